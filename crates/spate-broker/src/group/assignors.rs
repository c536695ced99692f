//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` and `range`,
//! as `group.consumer.assignors` names them.
//!
//! An assignor maps each member (with its subscribed topics) to partitions of the topics that
//! exist; the coordinator runs it whenever the group epoch moves past the target assignment
//! epoch. `uniform` is sticky: a member keeps the partitions of its previous target assignment
//! while they stay subscribed and the balance allows, so that a rebalance moves as few
//! partitions as possible (each move costs a revocation round). `range` gives each member a
//! contiguous range of every topic it subscribes to, in member id order, so that members of
//! co-partitioned topics get the same partition numbers.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// What an assignor sees of one member.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    /// The member's id.
    pub member_id: &'a str,
    /// The topics the member subscribes to (regex matches included).
    pub subscribed: &'a BTreeSet<String>,
    /// The member's previous target assignment (stickiness).
    pub previous: Option<&'a Assignment>,
}

/// Runs the assignor `name` (`uniform` or `range`; anything else is `uniform`, which the
/// request validation prevents) over `members` and the partition counts of existing topics.
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, partition_counts),
        _ => uniform(members, partition_counts),
    }
}

/// Every member with an empty assignment: where each assignor starts.
fn nothing_assigned(members: &[AssignorMember<'_>]) -> BTreeMap<String, Assignment> {
    members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect()
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Sticky and balanced: previous owners keep their still-valid partitions, every unowned
/// partition goes to the subscribed member with the fewest, then partitions move from the
/// fullest to the emptiest eligible member until no two members that share a topic differ by
/// more than one.
fn uniform(
    members: &[AssignorMember<'_>],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = nothing_assigned(members);
    let mut owned: BTreeSet<(String, i32)> = BTreeSet::new();
    let valid = |topic: &str, p: i32| partition_counts.get(topic).is_some_and(|n| p < *n);
    for m in members {
        let Some(previous) = m.previous else { continue };
        for (topic, parts) in previous {
            if !m.subscribed.contains(topic) {
                continue;
            }
            for p in parts.iter().copied().filter(|p| valid(topic, *p)) {
                if owned.insert((topic.clone(), p)) {
                    add(&mut out, m.member_id, topic, p);
                }
            }
        }
    }
    for (topic, n) in partition_counts {
        for p in 0..*n {
            if owned.contains(&(topic.clone(), p)) {
                continue;
            }
            let eligible = members.iter().filter(|m| m.subscribed.contains(topic));
            if let Some(m) = eligible.min_by_key(|m| (count(&out[m.member_id]), m.member_id)) {
                add(&mut out, m.member_id, topic, p);
            }
        }
    }
    balance(members, &mut out);
    out
}

fn add(out: &mut BTreeMap<String, Assignment>, member: &str, topic: &str, p: i32) {
    if let Some(a) = out.get_mut(member) {
        a.entry(topic.to_owned()).or_default().insert(p);
    }
}

/// Moves one partition at a time from the member with the most to an eligible member with at
/// least two fewer, until none can move. Each move lowers the sum of squared counts, so this
/// ends.
fn balance(members: &[AssignorMember<'_>], out: &mut BTreeMap<String, Assignment>) {
    loop {
        let mut by_count: Vec<&AssignorMember<'_>> = members.iter().collect();
        by_count.sort_by_key(|m| (std::cmp::Reverse(count(&out[m.member_id])), m.member_id));
        let mut moved = None;
        'search: for giver in &by_count {
            let have = count(&out[giver.member_id]);
            for taker in by_count.iter().rev() {
                if count(&out[taker.member_id]) + 1 >= have {
                    break;
                }
                // The giver's highest partition of a topic the taker subscribes to.
                let candidate = out[giver.member_id]
                    .iter()
                    .rev()
                    .filter(|(t, _)| taker.subscribed.contains(*t))
                    .find_map(|(t, ps)| ps.iter().next_back().map(|p| (t.clone(), *p)));
                if let Some((topic, p)) = candidate {
                    moved = Some((giver.member_id, taker.member_id, topic, p));
                    break 'search;
                }
            }
        }
        let Some((giver, taker, topic, p)) = moved else {
            return;
        };
        if let Some(a) = out.get_mut(giver) {
            if let Some(ps) = a.get_mut(&topic) {
                ps.remove(&p);
                if ps.is_empty() {
                    a.remove(&topic);
                }
            }
        }
        add(out, taker, &topic, p);
    }
}

/// Per topic, the subscribed members in member id order each get a contiguous range; the
/// first `partitions % members` get one more.
fn range(
    members: &[AssignorMember<'_>],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out = nothing_assigned(members);
    for (topic, n) in partition_counts {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .map(|m| m.member_id)
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        subscribed.sort_unstable();
        let per = *n as usize / subscribed.len();
        let extra = *n as usize % subscribed.len();
        let mut next = 0i32;
        for (i, member) in subscribed.iter().enumerate() {
            let take = per + usize::from(i < extra);
            for _ in 0..take {
                add(&mut out, member, topic, next);
                next += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn check_exact_cover(out: &BTreeMap<String, Assignment>, expected: &BTreeMap<String, i32>) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let total: i32 = expected.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let s = subs(&["a", "b"]);
        let c = counts(&[("a", 3), ("b", 3)]);
        let two = [
            AssignorMember {
                member_id: "m1",
                subscribed: &s,
                previous: None,
            },
            AssignorMember {
                member_id: "m2",
                subscribed: &s,
                previous: None,
            },
        ];
        let first = assign("uniform", &two, &c);
        check_exact_cover(&first, &c);
        assert!(first.values().all(|a| count(a) == 3));
        let three = [
            AssignorMember {
                member_id: "m1",
                subscribed: &s,
                previous: first.get("m1"),
            },
            AssignorMember {
                member_id: "m2",
                subscribed: &s,
                previous: first.get("m2"),
            },
            AssignorMember {
                member_id: "m3",
                subscribed: &s,
                previous: None,
            },
        ];
        let second = assign("uniform", &three, &c);
        check_exact_cover(&second, &c);
        assert!(second.values().all(|a| count(a) == 2), "{second:?}");
        // Only the partitions m3 got moved: m1 and m2 kept two of their three each.
        for m in ["m1", "m2"] {
            let kept = second[m]
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t, p)))
                .filter(|(t, p)| first[m].get(*t).is_some_and(|f| f.contains(p)))
                .count();
            assert_eq!(kept, 2, "{m}");
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let ab = subs(&["a", "b"]);
        let b = subs(&["b"]);
        let c = counts(&[("a", 4), ("b", 2), ("x", 5)]);
        let members = [
            AssignorMember {
                member_id: "m1",
                subscribed: &ab,
                previous: None,
            },
            AssignorMember {
                member_id: "m2",
                subscribed: &b,
                previous: None,
            },
        ];
        let out = assign("uniform", &members, &c);
        assert!(out["m2"].keys().all(|t| t == "b"));
        assert_eq!(count(&out["m1"]) + count(&out["m2"]), 6);
        assert_eq!(count(&out["m2"]), 2);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let s = subs(&["a"]);
        let c = counts(&[("a", 7)]);
        let members = [
            AssignorMember {
                member_id: "m2",
                subscribed: &s,
                previous: None,
            },
            AssignorMember {
                member_id: "m1",
                subscribed: &s,
                previous: None,
            },
        ];
        let out = assign("range", &members, &c);
        assert_eq!(out["m1"]["a"], (0..4).collect());
        assert_eq!(out["m2"]["a"], (4..7).collect());
    }
}
