//! Exploring a maze with an `explore` stage: each task visits one cell and proposes its open
//! neighbours; the server runs each cell once, so the stage's results are exactly the cells
//! reachable from the start (the original Dipla's explorer and its grid search).
//!
//! The maze is generated deterministically (a depth-first carve from a fixed seed), with one
//! walled-off room, so not every open cell is reachable.

use dipla_guest::{Explore, task};

/// Cells across and down (odd, so walls sit between cells).
pub const WIDTH: usize = 41;
/// Cells down.
pub const HEIGHT: usize = 31;

/// The maze: `true` where a cell is open.
pub fn maze() -> Vec<Vec<bool>> {
    let mut open = vec![vec![false; WIDTH]; HEIGHT];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut stack = vec![(1usize, 1usize)];
    open[1][1] = true;
    while let Some(&(x, y)) = stack.last() {
        let mut options: Vec<(usize, usize)> = [(0isize, -2isize), (2, 0), (0, 2), (-2, 0)]
            .iter()
            .filter_map(|&(dx, dy)| {
                let (nx, ny) = (x as isize + dx, y as isize + dy);
                (nx > 0 && ny > 0 && (nx as usize) < WIDTH - 1 && (ny as usize) < HEIGHT - 1)
                    .then_some((nx as usize, ny as usize))
            })
            .filter(|&(nx, ny)| !open[ny][nx])
            .collect();
        if options.is_empty() {
            stack.pop();
            continue;
        }
        let (nx, ny) = options.swap_remove(random(options.len()));
        open[(y + ny) / 2][(x + nx) / 2] = true;
        open[ny][nx] = true;
        stack.push((nx, ny));
    }
    // A walled-off room in the bottom-right corner: open, but unreachable.
    for row in open.iter_mut().take(HEIGHT - 1).skip(HEIGHT - 6) {
        row[WIDTH - 7] = false;
        for cell in row.iter_mut().take(WIDTH - 1).skip(WIDTH - 6) {
            *cell = true;
        }
    }
    for cell in open[HEIGHT - 7].iter_mut().take(WIDTH - 1).skip(WIDTH - 7) {
        *cell = false;
    }
    open
}

/// Visits cell `[x, y]`: the output is the cell, the next inputs are its open neighbours.
#[task]
pub fn visit(cell: [usize; 2]) -> Explore<[usize; 2], [usize; 2]> {
    let open = maze();
    let [x, y] = cell;
    let next = [
        (x + 1, y),
        (x.wrapping_sub(1), y),
        (x, y + 1),
        (x, y.wrapping_sub(1)),
    ]
    .into_iter()
    .filter(|&(nx, ny)| ny < HEIGHT && nx < WIDTH && open[ny][nx])
    .map(|(nx, ny)| [nx, ny])
    .collect();
    Explore { output: cell, next }
}

/// The cells reachable from `start`, by a plain local flood fill (to check the job against).
pub fn reachable(start: [usize; 2]) -> Vec<[usize; 2]> {
    let mut seen = vec![start];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(cell) = queue.pop_front() {
        for next in visit(cell).next {
            if !seen.contains(&next) {
                seen.push(next);
                queue.push_back(next);
            }
        }
    }
    seen.sort_unstable();
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_is_open_but_unreachable() {
        let open = maze();
        let cells: usize = open
            .iter()
            .map(|row| row.iter().filter(|&&c| c).count())
            .sum();
        let reached = reachable([1, 1]);
        assert!(reached.len() > 300, "{}", reached.len());
        assert!(reached.len() < cells, "the room should be walled off");
        assert!(!reached.contains(&[WIDTH - 3, HEIGHT - 3]));
    }
}
