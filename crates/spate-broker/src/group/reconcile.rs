//! Reconciliation of a consumer-protocol (KIP-848) member: moving its current assignment
//! towards its target one, one step per heartbeat, as Kafka's `CurrentAssignmentBuilder`.
//!
//! The rule that makes the protocol safe: a partition is handed to its new owner only once no
//! other member holds it — neither as assigned nor as pending revocation. So a member first
//! gives up what it loses (UNREVOKED_PARTITIONS: its heartbeats still list a revoked
//! partition as owned; its epoch does not advance), then gets the free part of its target at
//! the new epoch, and waits for the rest (UNRELEASED_PARTITIONS) until the previous owners
//! have revoked them.

use std::collections::BTreeSet;

use super::assignors::Assignment;

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Its assignment is its target assignment at the target epoch.
    Stable,
    /// It must revoke partitions before it can advance.
    UnrevokedPartitions,
    /// It is at the target epoch but some target partitions are still held by others.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's wire/log name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// Where a member is in its reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The member's reconciliation state (Stable, UnrevokedPartitions, …).
    pub state: MemberState,
    /// The member's epoch.
    pub member_epoch: i32,
    /// What the member may own now (sent to it as its assignment).
    pub assigned: Assignment,
    /// What it must give up before advancing.
    pub pending_revocation: Assignment,
}

/// One reconciliation step of the member `now` towards `target` (its part of the group's
/// target assignment of epoch `target_epoch`). `owned` is what its heartbeat says it owns
/// (`None`: not sent; it is assumed to still own what it was told to revoke);
/// `held_by_other` says whether another member still holds a partition.
pub fn step(
    now: &Reconciled,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_other: &dyn Fn(&str, i32) -> bool,
) -> Reconciled {
    match now.state {
        MemberState::Stable if now.member_epoch == target_epoch => now.clone(),
        MemberState::UnrevokedPartitions if owns_any(owned, &now.pending_revocation) => now.clone(),
        _ => next(
            now.member_epoch,
            &now.assigned,
            target_epoch,
            target,
            owned,
            held_by_other,
        ),
    }
}

fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        return !partitions.is_empty();
    };
    partitions.iter().any(|(topic, ps)| {
        owned
            .get(topic)
            .is_some_and(|o| ps.iter().any(|p| o.contains(p)))
    })
}

/// Kafka's `computeNextAssignment`: split the member's partitions into kept, to revoke and to
/// add; adds are only the free ones.
fn next(
    epoch: i32,
    assigned: &Assignment,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_other: &dyn Fn(&str, i32) -> bool,
) -> Reconciled {
    let mut kept = Assignment::new();
    let mut revoke = Assignment::new();
    let mut addable = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<&String> = assigned.keys().chain(target.keys()).collect();
    for topic in topics {
        let empty = BTreeSet::new();
        let current = assigned.get(topic).unwrap_or(&empty);
        let wanted = target.get(topic).unwrap_or(&empty);
        for p in current {
            let bucket = if wanted.contains(p) {
                &mut kept
            } else {
                &mut revoke
            };
            bucket.entry(topic.clone()).or_default().insert(*p);
        }
        for p in wanted.difference(current) {
            if held_by_other(topic, *p) {
                unreleased = true;
            } else {
                addable.entry(topic.clone()).or_default().insert(*p);
            }
        }
    }
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        return Reconciled {
            state: MemberState::UnrevokedPartitions,
            member_epoch: epoch,
            assigned: kept,
            pending_revocation: revoke,
        };
    }
    for (topic, ps) in addable {
        kept.entry(topic).or_default().extend(ps);
    }
    Reconciled {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        member_epoch: target_epoch,
        assigned: kept,
        pending_revocation: Assignment::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(pairs: &[(&str, &[i32])]) -> Assignment {
        pairs
            .iter()
            .map(|(t, ps)| (t.to_string(), ps.iter().copied().collect()))
            .collect()
    }

    fn at(epoch: i32, state: MemberState, assigned: Assignment, revoke: Assignment) -> Reconciled {
        Reconciled {
            state,
            member_epoch: epoch,
            assigned,
            pending_revocation: revoke,
        }
    }

    #[test]
    fn revoke_then_advance_then_receive_released() {
        let free = |_: &str, _: i32| false;
        let held_1 = |_: &str, p: i32| p == 1;
        // m1 owns 0,1,2 at epoch 1; the target at epoch 2 is 0 and 3.
        let now = at(
            1,
            MemberState::Stable,
            a(&[("t", &[0, 1, 2])]),
            Assignment::new(),
        );
        let target = a(&[("t", &[0, 3])]);
        let owned = a(&[("t", &[0, 1, 2])]);
        let r = step(&now, 2, &target, Some(&owned), &free);
        assert_eq!(r.state, MemberState::UnrevokedPartitions);
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.assigned, a(&[("t", &[0])]));
        assert_eq!(r.pending_revocation, a(&[("t", &[1, 2])]));
        // Still lists 1 as owned, or says nothing: no progress.
        assert_eq!(step(&r, 2, &target, Some(&a(&[("t", &[0, 1])])), &free), r);
        assert_eq!(step(&r, 2, &target, None, &free), r);
        // Revoked: advances to epoch 2 with the new partition.
        let r3 = step(&r, 2, &target, Some(&a(&[("t", &[0])])), &free);
        assert_eq!(r3.state, MemberState::Stable);
        assert_eq!(r3.member_epoch, 2);
        assert_eq!(r3.assigned, a(&[("t", &[0, 3])]));
        // A member whose new partition is still held waits in UNRELEASED_PARTITIONS.
        let fresh = at(0, MemberState::Stable, Assignment::new(), Assignment::new());
        let r4 = step(
            &fresh,
            2,
            &a(&[("t", &[1, 4])]),
            Some(&Assignment::new()),
            &held_1,
        );
        assert_eq!(r4.state, MemberState::UnreleasedPartitions);
        assert_eq!(r4.member_epoch, 2);
        assert_eq!(r4.assigned, a(&[("t", &[4])]));
        // Once released, it gets it.
        let r5 = step(
            &r4,
            2,
            &a(&[("t", &[1, 4])]),
            Some(&a(&[("t", &[4])])),
            &free,
        );
        assert_eq!(r5.state, MemberState::Stable);
        assert_eq!(r5.assigned, a(&[("t", &[1, 4])]));
    }
}
