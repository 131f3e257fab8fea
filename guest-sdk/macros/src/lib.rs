//! The `#[task]` attribute of the Dipla guest SDK (`dipla-guest`). Use it through that crate.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type, parse_macro_input};

/// Export a function as a Dipla task.
///
/// The function stays an ordinary Rust function (call it, test it natively); built for
/// `wasm32-unknown-unknown` it is also exported under its own name with the Dipla guest ABI.
/// Parameters must implement `serde::Deserialize` and be taken by value; the result must
/// implement `serde::Serialize`, or be a `Result<T: Serialize, E: Display>`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let function = parse_macro_input!(item as ItemFn);
    match expand(attr, &function) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#function #error).into()
        }
    }
}

/// Export a function as a Dipla verifier: `fn check(input: &In, output: &Out) -> bool`.
///
/// A stage names it (`verify = "module.check"`); the server runs it, in its own sandbox, on
/// every output a worker returns for that stage, and an output it rejects is run again on
/// another worker. The function stays an ordinary Rust function. `In` is the checked task's
/// input (for a task of several parameters, a tuple of them) and `Out` its output; `&[T]`
/// and `&str` may stand for a `Vec<T>` and a `String`.
#[proc_macro_attribute]
pub fn verifier(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let function = parse_macro_input!(item as ItemFn);
    match expand_verifier(attr, &function) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#function #error).into()
        }
    }
}

fn expand_verifier(attr: TokenStream2, function: &ItemFn) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[verifier] takes no arguments",
        ));
    }
    let sig = &function.sig;
    let name = &sig.ident;
    let export = name.to_string();
    check_signature(function)?;
    if RESERVED.contains(&export.as_str()) || export.starts_with("dipla_") {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{export}` is reserved by the Dipla guest ABI; rename the verifier"),
        ));
    }
    let shape = "a #[verifier] takes the task's input and output by reference and returns \
                 bool: fn check(input: &In, output: &Out) -> bool";
    let mut types = Vec::new();
    let mut params = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new_spanned(input, shape));
        };
        let Type::Reference(reference) = &*typed.ty else {
            return Err(syn::Error::new_spanned(&typed.ty, shape));
        };
        let name = match &*typed.pat {
            syn::Pat::Ident(ident) => ident.ident.to_string(),
            _ => "_".to_owned(),
        };
        let ty = &*reference.elem;
        params.push(format!(
            "{{\"name\":{},\"type\":{}}}",
            json_string(&name),
            json_string(&type_name(ty))
        ));
        types.push(ty);
    }
    let returns_bool = matches!(&sig.output, ReturnType::Type(_, ty) if type_name(ty) == "bool");
    if types.len() != 2 || !returns_bool {
        return Err(syn::Error::new_spanned(sig, shape));
    }
    // Borrowed unsized types decode into their owned form: `&[T]` from a `Vec<T>`, `&str`
    // from a `String`; the call then borrows them.
    let owned = |ty: &Type| -> TokenStream2 {
        match ty {
            Type::Slice(slice) => {
                let elem = &slice.elem;
                quote!(::std::vec::Vec<#elem>)
            }
            Type::Path(path) if path.path.is_ident("str") => quote!(::std::string::String),
            _ => quote!(#ty),
        }
    };
    let (input_type, output_type) = (owned(types[0]), owned(types[1]));
    let record = format!(
        "{{\"abi\":{ABI_VERSION},\"task\":{},\"params\":[{}],\"returns\":\"bool\",\"fold\":false,\"verifier\":true}}\n",
        json_string(&export),
        params.join(","),
    );
    let record_len = record.len();
    let record = syn::LitByteStr::new(record.as_bytes(), Span::call_site());
    let asserts = [(types[0], &input_type), (types[1], &output_type)]
        .into_iter()
        .map(|(ty, owned)| quote_spanned!(ty.span()=> ::dipla_guest::__private::assert_input::<#owned>();));
    Ok(quote! {
        #function

        const _: () = {
            #[allow(dead_code)]
            fn __dipla_check_types() {
                #(#asserts)*
            }
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = #export)]
            extern "C" fn __dipla_verifier(ptr: u32, len: u32) -> u64 {
                ::dipla_guest::__private::run(ptr, len, |__input| {
                    #[allow(unused_imports)]
                    use ::dipla_guest::__private::EncodeValue as _;
                    let __run = || -> ::core::result::Result<::std::vec::Vec<u8>, ::std::vec::Vec<u8>> {
                        let (__input, __output): (#input_type, #output_type) =
                            ::dipla_guest::__private::decode(__input)?;
                        let __value: bool = #name(&__input, &__output);
                        ::core::result::Result::Ok((&::dipla_guest::__private::Returned(__value)).encode())
                    };
                    match __run() {
                        ::core::result::Result::Ok(__out) | ::core::result::Result::Err(__out) => __out,
                    }
                })
            }

            #[unsafe(link_section = "dipla")]
            #[used]
            static __DIPLA_VERIFIER_RECORD: [u8; #record_len] = *#record;
        };
    })
}

/// The guest ABI version the generated code implements (equal to `dipla_guest::ABI_VERSION`).
const ABI_VERSION: u32 = 1;

/// Export names the ABI itself uses, which a task must not take.
const RESERVED: &[&str] = &["memory", "cabi_realloc", "dipla_panic_message"];

fn expand(attr: TokenStream2, function: &ItemFn) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(attr, "#[task] takes no arguments"));
    }
    let sig = &function.sig;
    let name = &sig.ident;
    let export = name.to_string();
    check_signature(function)?;
    if RESERVED.contains(&export.as_str()) || export.starts_with("dipla_") {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{export}` is reserved by the Dipla guest ABI; rename the task"),
        ));
    }

    let mut types = Vec::new();
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "a #[task] must be a free function: it cannot take `self`",
                ));
            }
            FnArg::Typed(typed) => {
                let ty = check_parameter(&typed.ty)?;
                let name = match &*typed.pat {
                    syn::Pat::Ident(ident) => ident.ident.to_string(),
                    _ => "_".to_owned(),
                };
                params.push(format!(
                    "{{\"name\":{},\"type\":{}}}",
                    json_string(&name),
                    json_string(&type_name(ty))
                ));
                types.push(ty);
            }
        }
    }
    let returns = match &sig.output {
        ReturnType::Default => "()".to_owned(),
        ReturnType::Type(_, ty) => type_name(ty),
    };
    // A reducer: two parameters of the result's own type. It also accepts a longer array
    // and folds it left to right, so a reduce tree can have any fan-in.
    let fold = types.len() == 2 && type_name(types[0]) == returns && type_name(types[1]) == returns;
    let args: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__arg{i}"))
        .collect();
    let decode = match types.len() {
        _ if fold => {
            let ty = types[0];
            quote!(let __items: ::std::vec::Vec<#ty> = ::dipla_guest::__private::decode(__input)?;)
        }
        1 => {
            let ty = &types[0];
            quote!(let __arg0: #ty = ::dipla_guest::__private::decode(__input)?;)
        }
        _ => quote!(let (#(#args,)*): (#(#types,)*) = ::dipla_guest::__private::decode(__input)?;),
    };
    let asserts = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> ::dipla_guest::__private::assert_input::<#ty>();));
    let output_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let encode =
        quote_spanned!(output_span=> (&::dipla_guest::__private::Returned(__value)).encode());
    let output_type = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let call = if fold {
        quote! {
            if __items.len() < 2 {
                return ::core::result::Result::Err(::dipla_guest::__private::failure(
                    "a reducer takes an array of at least 2 values",
                ));
            }
            let mut __items = __items.into_iter();
            let mut __value = __items.next().expect("checked above");
            for __item in __items {
                __value = #name(__value, __item);
            }
        }
    } else {
        quote!(let __value = #name(#(#args),*);)
    };
    let record = format!(
        "{{\"abi\":{ABI_VERSION},\"task\":{},\"params\":[{}],\"returns\":{},\"fold\":{fold}}}\n",
        json_string(&export),
        params.join(","),
        json_string(&returns),
    );
    let record_len = record.len();
    let record = syn::LitByteStr::new(record.as_bytes(), Span::call_site());

    Ok(quote! {
        #function

        const _: () = {
            // Checks the types on every target, so mistakes show in a native build too.
            #[allow(dead_code)]
            fn __dipla_check_types() {
                #(#asserts)*
                #[allow(unused_imports)]
                use ::dipla_guest::__private::{EncodeFlow as _, EncodeResult as _, EncodeValue as _};
                let _ = |__value: #output_type| #encode;
            }
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = #export)]
            extern "C" fn __dipla_task(ptr: u32, len: u32) -> u64 {
                ::dipla_guest::__private::run(ptr, len, |__input| {
                    #[allow(unused_imports)]
                    use ::dipla_guest::__private::{EncodeFlow as _, EncodeResult as _, EncodeValue as _};
                    let __run = || -> ::core::result::Result<::std::vec::Vec<u8>, ::std::vec::Vec<u8>> {
                        #decode
                        #call
                        ::core::result::Result::Ok(#encode)
                    };
                    match __run() {
                        ::core::result::Result::Ok(__out) | ::core::result::Result::Err(__out) => __out,
                    }
                })
            }

            #[unsafe(link_section = "dipla")]
            #[used]
            static __DIPLA_TASK_RECORD: [u8; #record_len] = *#record;
        };
    })
}

fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let fail = |tokens: &dyn quote::ToTokens, why: &str| Err(syn::Error::new_spanned(tokens, why));
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return fail(
            &sig.generics,
            "a #[task] cannot be generic: its parameter and result types must be concrete, \
             because they cross the wasm boundary as JSON",
        );
    }
    if let Some(token) = &sig.asyncness {
        return fail(token, "a #[task] cannot be async");
    }
    if let Some(token) = &sig.unsafety {
        return fail(
            token,
            "a #[task] cannot be unsafe: the host calls it with checked input",
        );
    }
    if let Some(abi) = &sig.abi {
        return fail(
            abi,
            "a #[task] is a plain Rust function: remove the `extern` ABI",
        );
    }
    if let Some(variadic) = &sig.variadic {
        return fail(variadic, "a #[task] cannot be variadic");
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Type::ImplTrait(_) = **ty
    {
        return fail(ty, "a #[task] must name its result type, not `impl Trait`");
    }
    Ok(())
}

fn check_parameter(ty: &Type) -> syn::Result<&Type> {
    match ty {
        Type::Reference(reference) => Err(syn::Error::new_spanned(
            reference,
            "task parameters are decoded from JSON and passed by value: take the owned type \
             instead of a reference",
        )),
        Type::ImplTrait(_) => Err(syn::Error::new_spanned(
            ty,
            "a #[task] cannot take `impl Trait`: name a concrete type",
        )),
        _ => Ok(ty),
    }
}

/// A type as readable text: `Vec<u64>`, `(String, u32)`.
fn type_name(ty: &Type) -> String {
    let text = quote!(#ty).to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let drop_space = c == ' '
            && (matches!(next, Some('<' | '>' | ',' | ')' | ']' | ':'))
                || matches!(out.chars().last(), Some('<' | '(' | '[' | '&' | ':')));
        if !drop_space {
            out.push(c);
        }
    }
    out
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
