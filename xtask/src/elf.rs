//! What a package needs to know about a Linux binary, read from its ELF headers: its
//! architecture, whether it is static, and which C libraries it needs (for a Debian package's
//! `Depends`). Read from the file itself, so packaging needs no binutils.

use std::path::Path;

use crate::Result;

/// What a package needs to know about one executable.
#[derive(Debug)]
pub struct Binary {
    /// The Debian architecture (`amd64`, `arm64`).
    pub debian_arch: &'static str,
    /// It has a program interpreter (`ld-linux...`), so it needs the C library it was built
    /// against; a static (or static-pie) binary has none.
    pub dynamic: bool,
    /// The newest glibc symbol version it needs (`(2, 34)`), if it needs glibc.
    pub glibc: Option<(u32, u32)>,
    /// It needs `libgcc_s.so.1` (unwinding, in a glibc build).
    pub libgcc_s: bool,
}

const PT_INTERP: u32 = 3;

/// Reads `path`'s ELF headers.
pub fn inspect(path: &Path) -> Result<Binary> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let not_elf = || {
        format!(
            "{} is not a 64-bit little-endian ELF binary",
            path.display()
        )
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(not_elf());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let debian_arch = match u16_at(0x12) {
        0x3e => "amd64",
        0xb7 => "arm64",
        machine => {
            return Err(format!(
                "{}: no Debian architecture for ELF machine {machine:#x}",
                path.display()
            ));
        }
    };
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes"));
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    let phoff = usize::try_from(phoff).map_err(|_| not_elf())?;
    let mut dynamic = false;
    for header in 0..phnum {
        let p_type = u32_at(phoff + header * phentsize).ok_or_else(not_elf)?;
        dynamic |= p_type == PT_INTERP;
    }
    // The version strings (`GLIBC_2.34`) and library names (`libgcc_s.so.1`) a dynamic
    // binary needs are in its dynamic string table; finding them in the file is enough.
    let glibc = dynamic.then(|| glibc_versions(&bytes).max()).flatten();
    let libgcc_s = dynamic && contains(&bytes, b"libgcc_s.so.1\0");
    Ok(Binary {
        debian_arch,
        dynamic,
        glibc,
        libgcc_s,
    })
}

/// Every `GLIBC_X.Y` version string in `bytes`.
fn glibc_versions(bytes: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    const TAG: &[u8] = b"GLIBC_";
    bytes
        .windows(TAG.len())
        .enumerate()
        .filter(|(_, window)| *window == TAG)
        .filter_map(|(at, _)| {
            let rest = &bytes[at + TAG.len()..];
            let end = rest.iter().position(|&b| b == 0).filter(|&end| end < 16)?;
            let version = std::str::from_utf8(&rest[..end]).ok()?;
            let mut parts = version.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some((major, minor))
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic_and_needs_a_glibc() {
        let binary = inspect(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(binary.debian_arch, "amd64");
        assert!(binary.dynamic);
        let (major, minor) = binary.glibc.expect("a GLIBC_ version");
        assert!(major == 2 && minor >= 2, "GLIBC_{major}.{minor}");
    }

    #[test]
    fn versions_are_read_from_the_string_table() {
        let table = b"\0libc.so.6\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0";
        let mut versions: Vec<_> = glibc_versions(table).collect();
        versions.sort_unstable();
        assert_eq!(versions, [(2, 2), (2, 17), (2, 34)]);
    }

    #[test]
    fn what_is_not_elf_is_refused() {
        let file = std::env::temp_dir().join(format!("not-elf-{}", std::process::id()));
        std::fs::write(
            &file,
            b"#!/bin/sh\necho hello, this is not an ELF binary at all\n",
        )
        .unwrap();
        let error = inspect(&file).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(
            error.contains("is not a 64-bit little-endian ELF binary"),
            "{error}"
        );
    }
}
