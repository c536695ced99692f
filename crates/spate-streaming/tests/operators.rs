//! Golden-output tests for every operator, on queue streams with deterministic batches.

mod common;

use std::time::Duration;

use common::*;
use spate_streaming::{State, StateSpec};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn map_filter_flat_map_fuse() {
    let out = run_job(vec![vec![1, 2, 3], vec![4, 5]], 3, |s| {
        s.map(|x: i32| x * 10)
            .filter(|x| *x > 10)
            .flat_map(|x| vec![x, x + 1])
    });
    assert_eq!(
        out,
        vec![
            (1, vec![20, 21, 30, 31]),
            (2, vec![40, 41, 50, 51]),
            (3, vec![])
        ]
    );
}

#[test]
fn map_partitions_glom_repartition() {
    let out = run_job(vec![(0..10).collect::<Vec<i32>>()], 1, |s| {
        s.map_partitions(|it| vec![it.sum::<i32>()])
    });
    // Three partitions (default parallelism) each summed; the sums add up.
    assert_eq!(out[0].1.len(), 3);
    assert_eq!(out[0].1.iter().sum::<i32>(), 45);
    let out = run_job(vec![(0..10).collect::<Vec<i32>>()], 1, |s| {
        s.repartition(5).glom().map(|p| p.len())
    });
    let sizes = &out[0].1;
    assert_eq!(sizes.len(), 5);
    assert_eq!(sizes.iter().sum::<usize>(), 10);
    assert!(sizes.iter().all(|&n| (1..=3).contains(&n)), "{sizes:?}");
}

#[test]
fn count_reduce_count_by_value() {
    let out = run_job(vec![vec![3, 1, 3], vec![]], 2, |s| s.count());
    assert_eq!(out, vec![(1, vec![3]), (2, vec![0])]);
    let out = run_job(vec![vec![3, 1, 3], vec![]], 2, |s| {
        s.reduce(|a: i32, b| a.max(b))
    });
    assert_eq!(out, vec![(1, vec![3]), (2, vec![])]);
    let out = run_job(vec![vec![3, 1, 3]], 1, |s| s.count_by_value());
    assert_eq!(out, vec![(1, vec![(1, 1), (3, 2)])]);
}

#[test]
fn reduce_group_combine_by_key() {
    let words = vec![strs(&["a", "b", "a", "c", "a"]), strs(&["b"])];
    let out = run_job(words.clone(), 2, |s| {
        s.map(|w: String| (w, 1u32)).reduce_by_key(|a, b| a + b)
    });
    assert_eq!(
        out,
        vec![
            (1, vec![("a".into(), 3), ("b".into(), 1), ("c".into(), 1)]),
            (2, vec![("b".into(), 1)])
        ]
    );
    let out = run_job(vec![vec![(1, 5), (2, 1), (1, 7)]], 1, |s| {
        s.group_by_key().map(|(k, mut v): (i32, Vec<i32>)| {
            v.sort();
            (k, v)
        })
    });
    assert_eq!(out, vec![(1, vec![(1, vec![5, 7]), (2, vec![1])])]);
    // Average per key via combine_by_key: (sum, count).
    let out = run_job(vec![vec![(1, 4), (2, 1), (1, 8)]], 1, |s| {
        s.combine_by_key(
            |v: i32| (v, 1),
            |(s, c), v| (s + v, c + 1),
            |(a, b), (c, d)| (a + c, b + d),
        )
        .map_values(|(s, c)| s / c)
    });
    assert_eq!(out, vec![(1, vec![(1, 6), (2, 1)])]);
    let out = run_job(vec![vec![(1, 2)]], 1, |s| {
        s.flat_map_values(|v: i32| vec![v, v * 10])
    });
    assert_eq!(out, vec![(1, vec![(1, 2), (1, 20)])]);
}

#[test]
fn union_transform_and_joins() {
    let ctx = ctx();
    let (qa, a) = ctx.queue_stream::<(i32, &'static str)>(true);
    let (qb, b) = ctx.queue_stream::<(i32, char)>(true);
    qa.push(vec![(1, "x"), (2, "y"), (2, "z")]);
    qb.push(vec![(2, 'p'), (3, 'q')]);
    let clock = collect(&a.map(|_| ()));
    let join = collect(&a.join(&b));
    let left = collect(&a.left_outer_join(&b));
    let right = collect(&a.right_outer_join(&b));
    let full = collect(&a.full_outer_join(&b));
    let cog = collect(&a.cogroup(&b).map(|(k, (mut v, w))| {
        v.sort();
        (k, v.len(), w.len())
    }));
    let uni = collect(&a.map(|(k, _)| k).union(&b.map(|(k, _)| k)));
    let tw = collect(
        &a.transform_with(&b, |x, y, _t| -> Result<_, std::convert::Infallible> {
            Ok(x.map(|(k, _)| k).union(&y.map(|(k, _)| k * 100)))
        }),
    );
    let tr = collect(
        &a.transform(|batch, _t| -> Result<_, std::convert::Infallible> {
            Ok(batch.filter(|(k, _)| *k == 2).map(|(_, v)| v))
        }),
    );
    ctx.start().unwrap();
    wait_for(&clock, 1);
    ctx.stop(true).unwrap();
    let first = clock.lock()[0].0;
    assert_eq!(
        by_batch(&join, first, 1),
        vec![(1, vec![(2, ("y", 'p')), (2, ("z", 'p'))])]
    );
    assert_eq!(
        by_batch(&left, first, 1),
        vec![(
            1,
            vec![
                (1, ("x", None)),
                (2, ("y", Some('p'))),
                (2, ("z", Some('p')))
            ]
        )]
    );
    assert_eq!(
        by_batch(&right, first, 1),
        vec![(
            1,
            vec![
                (2, (Some("y"), 'p')),
                (2, (Some("z"), 'p')),
                (3, (None, 'q'))
            ]
        )]
    );
    assert_eq!(
        by_batch(&full, first, 1),
        vec![(
            1,
            vec![
                (1, (Some("x"), None)),
                (2, (Some("y"), Some('p'))),
                (2, (Some("z"), Some('p'))),
                (3, (None, Some('q')))
            ]
        )]
    );
    assert_eq!(
        by_batch(&cog, first, 1),
        vec![(1, vec![(1, 1, 0), (2, 2, 1), (3, 0, 1)])]
    );
    assert_eq!(by_batch(&uni, first, 1), vec![(1, vec![1, 2, 2, 2, 3])]);
    assert_eq!(by_batch(&tr, first, 1), vec![(1, vec!["y", "z"])]);
    assert_eq!(by_batch(&tw, first, 1), vec![(1, vec![1, 2, 2, 200, 300])]);
}

#[test]
fn window_slides_every_two_batches() {
    let inputs: Vec<Vec<u32>> = (1..=6).map(|i| vec![i]).collect();
    let out = run_job(inputs, 6, |s| s.window(ms(30), ms(20)).unwrap());
    assert_eq!(
        out,
        vec![(2, vec![1, 2]), (4, vec![2, 3, 4]), (6, vec![4, 5, 6])]
    );
}

#[test]
fn count_and_reduce_by_window() {
    let inputs: Vec<Vec<u32>> = vec![vec![1, 2], vec![3], vec![], vec![4]];
    let out = run_job(inputs.clone(), 4, |s| {
        s.count_by_window(ms(20), ms(10)).unwrap()
    });
    assert_eq!(
        out,
        vec![(1, vec![2]), (2, vec![3]), (3, vec![1]), (4, vec![1])]
    );
    let out = run_job(inputs, 4, |s| {
        s.reduce_by_window(|a, b| a + b, ms(20), ms(10)).unwrap()
    });
    assert_eq!(
        out,
        vec![(1, vec![3]), (2, vec![6]), (3, vec![3]), (4, vec![4])]
    );
}

fn word_batches() -> Vec<Vec<String>> {
    vec![
        strs(&["a", "b"]),
        strs(&["a"]),
        strs(&["c"]),
        vec![],
        strs(&["a"]),
    ]
}

fn counts(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, c)| (k.to_string(), *c)).collect()
}

#[test]
fn reduce_by_key_and_window_without_inverse() {
    let out = run_job(word_batches(), 5, |s| {
        s.map(|w| (w, 1i64))
            .reduce_by_key_and_window(|a, b| a + b, ms(20), ms(10))
            .unwrap()
    });
    assert_eq!(
        out,
        vec![
            (1, counts(&[("a", 1), ("b", 1)])),
            (2, counts(&[("a", 2), ("b", 1)])),
            (3, counts(&[("a", 1), ("c", 1)])),
            (4, counts(&[("c", 1)])),
            (5, counts(&[("a", 1)])),
        ]
    );
}

#[test]
fn reduce_by_key_and_window_with_inverse_keeps_zero_keys() {
    let out = run_job(word_batches(), 5, |s| {
        s.map(|w| (w, 1i64))
            .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, ms(20), ms(10))
            .unwrap()
    });
    assert_eq!(
        out,
        vec![
            (1, counts(&[("a", 1), ("b", 1)])),
            (2, counts(&[("a", 2), ("b", 1)])),
            (3, counts(&[("a", 1), ("b", 0), ("c", 1)])),
            (4, counts(&[("a", 0), ("b", 0), ("c", 1)])),
            (5, counts(&[("a", 1), ("b", 0), ("c", 0)])),
        ]
    );
}

#[test]
fn reduce_by_key_and_window_with_inverse_and_filter() {
    let out = run_job(word_batches(), 5, |s| {
        s.map(|w| (w, 1i64))
            .reduce_by_key_and_window_inv_filtered(
                |a, b| a + b,
                |a, b| a - b,
                ms(20),
                ms(10),
                |(_, c)| *c != 0,
            )
            .unwrap()
    });
    assert_eq!(
        out,
        vec![
            (1, counts(&[("a", 1), ("b", 1)])),
            (2, counts(&[("a", 2), ("b", 1)])),
            (3, counts(&[("a", 1), ("c", 1)])),
            (4, counts(&[("c", 1)])),
            (5, counts(&[("a", 1)])),
        ]
    );
    let out = run_job(word_batches(), 5, |s| {
        s.count_by_value_and_window(ms(20), ms(10)).unwrap()
    });
    let as_u64 = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect::<Vec<_>>()
    };
    assert_eq!(out[2], (3, as_u64(&[("a", 1), ("c", 1)])));
    assert_eq!(out[4], (5, as_u64(&[("a", 1)])));
}

#[test]
fn inverse_window_with_slide_of_two() {
    // Window of 4 batches sliding by 2: outputs at batches 2 and 4 and 6.
    let inputs: Vec<Vec<String>> = vec![
        strs(&["a"]),
        strs(&["b"]),
        strs(&["a"]),
        strs(&["c"]),
        strs(&["c"]),
        vec![],
    ];
    let out = run_job(inputs, 6, |s| {
        s.map(|w| (w, 1i64))
            .reduce_by_key_and_window_inv_filtered(
                |a, b| a + b,
                |a, b| a - b,
                ms(40),
                ms(20),
                |(_, c)| *c != 0,
            )
            .unwrap()
    });
    assert_eq!(
        out,
        vec![
            (2, counts(&[("a", 1), ("b", 1)])),
            (4, counts(&[("a", 2), ("b", 1), ("c", 1)])),
            (6, counts(&[("a", 1), ("c", 2)])),
        ]
    );
}

#[test]
fn window_must_be_a_multiple_of_the_batch_interval() {
    let ctx = ctx();
    let (_q, s) = ctx.queue_stream::<u32>(true);
    let err = s.window(ms(25), ms(10)).unwrap_err().to_string();
    assert!(err.contains("window") && err.contains("multiple"), "{err}");
    let err = s.window(ms(20), ms(15)).unwrap_err().to_string();
    assert!(err.contains("slide"), "{err}");
    let err = s
        .map(|x| (x, 1u64))
        .reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, ms(7), ms(10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reduce_by_key_and_window"), "{err}");
    // A window of a window must be a multiple of the parent's slide (20 ms), not just 10 ms.
    let w = s.window(ms(20), ms(20)).unwrap();
    let err = w.window(ms(30), ms(20)).unwrap_err().to_string();
    assert!(err.contains("20ms"), "{err}");
}

#[test]
fn update_state_by_key_runs_for_every_key_and_removes_on_none() {
    let inputs = vec![strs(&["a", "b", "a"]), strs(&["b"]), vec![], strs(&["a"])];
    let out = run_job(inputs, 4, |s| {
        s.map(|w| (w, 1u32))
            .update_state_by_key(|new: &[u32], old: Option<u32>| {
                let n = old.unwrap_or(0) + new.iter().sum::<u32>();
                // Keys drop out once they reach 3.
                (n < 3).then_some(n)
            })
    });
    let kv = |v: &[(&str, u32)]| {
        v.iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        out,
        vec![
            (1, kv(&[("a", 2), ("b", 1)])),
            (2, kv(&[("a", 2), ("b", 2)])),
            (3, kv(&[("a", 2), ("b", 2)])),
            (4, kv(&[("b", 2)])),
        ]
    );
}

#[test]
fn map_with_state_times_out_idle_keys() {
    let ctx = ctx();
    let (q, words) = ctx.queue_stream::<String>(true);
    for b in [
        strs(&["a", "b"]),
        strs(&["a"]),
        strs(&["a"]),
        vec![],
        vec![],
        vec![],
    ] {
        q.push(b);
    }
    let clock = collect(&words.map(|_| ()));
    // Idle for more than 20 ms (2 batches) → timed out.
    let spec = StateSpec::function(|w: &String, one: Option<u32>, st: &mut State<u32>| {
        if st.is_timing_out() {
            return (w.clone(), *st.get().unwrap_or(&0), true);
        }
        let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
        st.update(n);
        (w.clone(), n, false)
    })
    .timeout(ms(20))
    .initial_state(vec![("z".to_string(), 100)]);
    let mws = words.map(|w| (w, 1u32)).map_with_state(spec);
    let mapped = collect(&mws.mapped());
    let snaps = collect(&mws.state_snapshots());
    ctx.start().unwrap();
    wait_for(&clock, 6);
    ctx.stop(true).unwrap();
    let first = clock.lock().iter().map(|(t, _)| *t).min().unwrap();
    let m = |v: &[(&str, u32, bool)]| {
        v.iter()
            .map(|(k, c, t)| (k.to_string(), *c, *t))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_batch(&mapped, first, 6),
        vec![
            (1, m(&[("a", 1, false), ("b", 1, false)])),
            (2, m(&[("a", 2, false)])),
            (3, m(&[("a", 3, false)])),
            // b last had data in batch 1: idle > 20 ms at batch 4; z (initial) likewise.
            (4, m(&[("b", 1, true), ("z", 100, true)])),
            (5, m(&[])),
            (6, m(&[("a", 3, true)])),
        ]
    );
    let s = |v: &[(&str, u32)]| {
        v.iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect::<Vec<_>>()
    };
    let snaps = by_batch(&snaps, first, 6);
    assert_eq!(snaps[0], (1, s(&[("a", 1), ("b", 1), ("z", 100)])));
    assert_eq!(snaps[3], (4, s(&[("a", 3)])));
    assert_eq!(snaps[5], (6, s(&[])));
}

#[test]
fn combining_streams_with_different_slides_fails_at_start() {
    let ctx = ctx();
    let (_q, s) = ctx.queue_stream::<u32>(true);
    let pairs = s.map(|x| (x, 1u32));
    let windowed = pairs.window(ms(20), ms(20)).unwrap();
    pairs
        .join(&windowed)
        .foreach_batch(|_, _| Ok::<_, spate_streaming::StreamingError>(()));
    let err = ctx.start().unwrap_err().to_string();
    assert!(err.contains("join") && err.contains("slide"), "{err}");
    assert!(ctx
        .union(&[s.clone(), s.window(ms(20), ms(20)).unwrap()])
        .is_err());
}
