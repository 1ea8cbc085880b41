//! Planning a page's port writes so that no reader ever sees half of a renumbering.
//!
//! A splitter has one port per number (a unique key). When the platform swaps two ports'
//! numbers, or gives a number to a new port whose old holder is only listed later (or never,
//! because it is gone), writing the page as it comes would need the old holder moved out of the
//! way first. Parking it on a negative number inside the page's transaction is invisible to
//! readers only if its own record is written in the same transaction. So a write whose slot is
//! held by a row that does not move in this page is deferred: it waits, in memory, for a later
//! page that moves the holder, or for the end of the run, after the rows found gone have been
//! deleted. What is deferred is bounded by the renumberings in flight, not by the project.

use std::collections::{HashMap, HashSet};

/// A splitter's port slot: (splitter id, port number).
pub(super) type Slot = (i64, i32);

/// A port the page wants to write, and where it is now when it exists locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Move {
    /// The port's platform fid.
    pub(super) fid: String,
    /// The slot the platform gives it.
    pub(super) to: Slot,
}

/// Which of `moves` can be written now; the others wait. `held` is the local ports standing on
/// the slots the moves land on, fid and slot: a port anywhere else cannot be in a move's way
/// (the test `only_ports_on_landing_slots_matter` checks that the plan is the same either way).
pub(super) fn plan(moves: &[Move], held: &HashMap<String, Slot>) -> (Vec<usize>, Vec<usize>) {
    let mut deferred: HashSet<usize> = HashSet::new();
    loop {
        // Where every port ends up if the moves not deferred are applied.
        let mut at: HashMap<Slot, Vec<Option<usize>>> = HashMap::new();
        let moving: HashMap<&str, usize> = moves
            .iter()
            .enumerate()
            .filter(|(i, _)| !deferred.contains(i))
            .map(|(i, m)| (m.fid.as_str(), i))
            .collect();
        for (fid, slot) in held {
            if !moving.contains_key(fid.as_str()) {
                at.entry(*slot).or_default().push(None);
            }
        }
        for (i, m) in moves.iter().enumerate() {
            if !deferred.contains(&i) {
                at.entry(m.to).or_default().push(Some(i));
            }
        }
        let mut more = Vec::new();
        for occupants in at.values().filter(|o| o.len() > 1) {
            // A port that stays keeps its slot; among moves alone, the first keeps it.
            let stays = occupants.contains(&None);
            let mut landing: Vec<usize> = occupants.iter().flatten().copied().collect();
            landing.sort_unstable();
            let skip = usize::from(!stays);
            more.extend(landing.into_iter().skip(skip));
        }
        if more.is_empty() {
            break;
        }
        deferred.extend(more);
    }
    let (mut now, mut later): (Vec<usize>, Vec<usize>) =
        (0..moves.len()).partition(|i| !deferred.contains(i));
    now.sort_unstable();
    later.sort_unstable();
    (now, later)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(fid: &str, splitter: i64, number: i32) -> Move {
        Move {
            fid: fid.into(),
            to: (splitter, number),
        }
    }

    fn held(rows: &[(&str, i64, i32)]) -> HashMap<String, Slot> {
        rows.iter()
            .map(|(f, s, n)| (f.to_string(), (*s, *n)))
            .collect()
    }

    #[test]
    fn a_swap_in_one_page_is_written_at_once() {
        let h = held(&[("a", 1, 1), ("b", 1, 2)]);
        assert_eq!(
            plan(&[mv("a", 1, 2), mv("b", 1, 1)], &h),
            (vec![0, 1], vec![])
        );
    }

    #[test]
    fn half_a_swap_waits_for_the_other_half() {
        let h = held(&[("a", 1, 1), ("b", 1, 2)]);
        assert_eq!(plan(&[mv("a", 1, 2)], &h), (vec![], vec![0]));
        // A chain: c waits for a, which waits for b.
        let h = held(&[("a", 1, 1), ("b", 1, 2), ("c", 1, 3)]);
        assert_eq!(
            plan(&[mv("a", 1, 2), mv("c", 1, 1)], &h),
            (vec![], vec![0, 1])
        );
    }

    #[test]
    fn free_slots_and_other_splitters_do_not_wait() {
        let h = held(&[("a", 1, 1), ("b", 2, 1)]);
        assert_eq!(
            plan(&[mv("a", 1, 3), mv("n", 1, 1), mv("m", 3, 1)], &h),
            (vec![0, 1, 2], vec![])
        );
        // Moving to another splitter frees the old slot.
        assert_eq!(
            plan(&[mv("a", 2, 5), mv("x", 1, 1)], &h),
            (vec![0, 1], vec![])
        );
    }

    #[test]
    fn only_ports_on_landing_slots_matter() {
        let all = held(&[
            ("a", 1, 1),
            ("b", 1, 2),
            ("c", 1, 3),
            ("d", 1, 4),
            ("e", 2, 1),
        ]);
        let cases = [
            vec![mv("a", 1, 2), mv("b", 1, 1)],
            vec![mv("a", 1, 2)],
            vec![mv("a", 1, 2), mv("c", 1, 1)],
            vec![mv("a", 1, 5), mv("n", 1, 1), mv("m", 3, 1)],
            vec![mv("a", 2, 1), mv("e", 1, 4)],
            vec![mv("x", 1, 3), mv("y", 1, 3)],
        ];
        for moves in cases {
            let landing: HashSet<Slot> = moves.iter().map(|m| m.to).collect();
            let on_landing: HashMap<String, Slot> = all
                .iter()
                .filter(|(_, slot)| landing.contains(slot))
                .map(|(f, s)| (f.clone(), *s))
                .collect();
            assert_eq!(plan(&moves, &all), plan(&moves, &on_landing), "{moves:?}");
        }
    }

    #[test]
    fn two_ports_given_one_number_keep_the_first() {
        let h = held(&[]);
        assert_eq!(
            plan(&[mv("a", 1, 1), mv("b", 1, 1)], &h),
            (vec![0], vec![1])
        );
    }
}
