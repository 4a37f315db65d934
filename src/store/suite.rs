//! The suite every `JobStore` backend must pass, as `object_store`'s backends pass one:
//! each backend's tests call `run_all` with a constructor (`history` → a fresh, empty
//! store). What it checks is the contract of the trait, through the trait only.

use std::ffi::OsStr;
use std::time::SystemTime;

use proptest::prelude::*;

use crate::analyze::{Analysis, Kind};
use crate::disk::report::{Report, Timing};
use crate::job::{JobId, JobState};
use crate::store::{JobStart, JobStore};

/// A fresh store keeping `history` finished jobs.
pub type Make = dyn Fn(usize) -> Box<dyn JobStore>;

/// Runs every check against stores made by `make`.
pub fn run_all(make: &Make) {
    a_job_moves_through_its_states_and_the_counts_follow(make);
    a_refused_retry_leaves_the_job_failed_and_counted(make);
    history_is_bounded_and_drops_the_oldest(make);
    progress_is_pushed_told_and_kept_at_the_finish(make);
    a_failed_finish_keeps_the_job_visible_and_counted(make);
    restored_history_counts_and_lists(make);
    expected_files_are_taken_once(make);
    listings_match_a_plain_model(make);
    kinds_count_the_history(make);
}

fn id(n: u128) -> JobId {
    JobId::from(n)
}

pub(crate) fn report(id: JobId, ok: bool) -> Report {
    report_of(id, ok, Kind::Binary)
}

fn report_of(id: JobId, ok: bool, kind: Kind) -> Report {
    let now = SystemTime::now();
    let analysis = Analysis {
        kind,
        detected: None,
        compression: None,
        size_bytes: 1,
        hash: crate::analyze::hash::ContentHash::missing(Default::default()),
        details: if ok {
            Ok(None)
        } else {
            Err(crate::analyze::AnalysisError::Truncated)
        },
    };
    let timing = Timing {
        queued_at: now,
        started_at: now,
        finished_at: now,
    };
    Report::new(
        id.to_string(),
        OsStr::new("f"),
        OsStr::new("f"),
        analysis,
        timing,
    )
}

pub(crate) fn start(store: &dyn JobStore, id: JobId) {
    store.start(JobStart {
        id,
        original_name: "f".into(),
        file: "f".into(),
        size_bytes: 1,
        queued_at: SystemTime::now(),
    });
}

fn a_job_moves_through_its_states_and_the_counts_follow(make: &Make) {
    let store = make(10);
    let (a, b) = (id(1), id(2));
    store.queue(a, OsStr::new("f"), 1, SystemTime::now());
    store.queue(b, OsStr::new("g"), 1, SystemTime::now());
    assert_eq!(store.counts().queued, 2);
    start(&*store, a);
    store.forget(b);
    let counts = store.counts();
    assert_eq!((counts.queued, counts.processing), (0, 1));
    assert_eq!(store.get(a).map(|j| j.state), Some(JobState::Processing));
    let failed = report(a, false);
    store.finish(a, &failed, OsStr::new("f-2"), (1, 1));
    let counts = store.counts();
    assert_eq!(
        (counts.processing, counts.completed, counts.failed),
        (0, 0, 1)
    );
    let job = store.get(a).expect("kept");
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        (job.original_name.as_os_str(), job.file.as_os_str()),
        (OsStr::new("f"), OsStr::new("f-2"))
    );
    assert!(job.summary.and_then(|s| s.error).is_some());
    assert!(store.get(b).is_none());
}

fn a_refused_retry_leaves_the_job_failed_and_counted(make: &Make) {
    let store = make(10);
    let a = id(1);
    start(&*store, a);
    store.finish(a, &report(a, false), OsStr::new("f"), (1, 1));
    let before = store.begin_retry(a).expect("failed job");
    assert_eq!((store.counts().queued, store.counts().failed), (1, 0));
    store.undo_retry(before);
    let counts = store.counts();
    assert_eq!((counts.queued, counts.failed), (0, 1));
    assert_eq!(store.get(a).map(|j| j.state), Some(JobState::Failed));
    assert!(store.begin_retry(a).is_ok(), "retryable again");
}

fn history_is_bounded_and_drops_the_oldest(make: &Make) {
    let store = make(3);
    for i in 0..10 {
        start(&*store, id(i));
        store.finish(id(i), &report(id(i), true), OsStr::new("f"), (1, 1));
    }
    assert_eq!(store.list(None, 100, 0).0, 3);
    assert!(store.get(id(6)).is_none());
    assert!(store.get(id(7)).is_some());
    assert_eq!(store.counts().completed, 10);
}

fn kinds_count_the_history(make: &Make) {
    let store = make(3);
    assert!(store.kinds().is_empty());
    let finished = [
        (Kind::Csv, true),
        (Kind::Text, false),
        (Kind::Csv, true),
        (Kind::Json, true),
    ];
    for (n, (kind, ok)) in finished.into_iter().enumerate() {
        let job = id(n as u128);
        start(&*store, job);
        store.finish(job, &report_of(job, ok, kind), OsStr::new("f"), (1, 1));
    }
    // The oldest csv left the history of 3.
    let count = |store: &dyn JobStore| -> Vec<(Kind, usize, usize)> {
        let kinds = store.kinds();
        kinds
            .into_iter()
            .map(|k| (k.kind, k.completed, k.failed))
            .collect()
    };
    assert_eq!(
        count(&*store),
        [(Kind::Text, 0, 1), (Kind::Csv, 1, 0), (Kind::Json, 1, 0)]
    );
    // A retried job leaves its kind's failures; a forgotten one its completions.
    store.begin_retry(id(1)).expect("failed job");
    store.forget(id(3));
    assert_eq!(count(&*store), [(Kind::Csv, 1, 0)]);
}

fn progress_is_pushed_told_and_kept_at_the_finish(make: &Make) {
    let store = make(10);
    let a = id(1);
    let mut feed = store.changes().subscribe();
    let before = store.changes().version();
    start(&*store, a);
    store.progressed(a, 3, 100);
    assert_eq!(store.get(a).and_then(|job| job.progress), Some((3, 100)));
    store.progressed(a, 40, 100);
    let told: Vec<Option<(u64, u64)>> = std::iter::from_fn(|| feed.try_recv().ok())
        .map(|job| job.progress)
        .collect();
    // The start, then every push (the worker throttles, not the store).
    assert_eq!(told, [None, Some((3, 100)), Some((40, 100))]);
    assert!(store.changes().version() > before);
    store.finish(a, &report(a, true), OsStr::new("f"), (100, 100));
    assert_eq!(store.get(a).and_then(|job| job.progress), Some((100, 100)));
    // Unknown jobs are ignored.
    store.progressed(id(99), 1, 2);
    assert!(store.get(id(99)).is_none());
}

fn a_failed_finish_keeps_the_job_visible_and_counted(make: &Make) {
    let store = make(10);
    let a = id(1);
    start(&*store, a);
    assert_eq!((store.unfinished(), store.finish_trouble()), (0, None));
    store.finish_failed(a, "no space left on device", 1);
    let job = store.get(a).expect("kept");
    assert_eq!((job.state, job.attempts), (JobState::Queued, 1));
    assert_eq!(job.last_error.as_deref(), Some("no space left on device"));
    assert_eq!(store.unfinished(), 1);
    assert_eq!(
        store.finish_trouble(),
        Some((1, "no space left on device".to_string()))
    );
    let counts = store.counts();
    assert_eq!((counts.queued, counts.processing), (1, 0));
    start(&*store, a);
    store.finish(a, &report(a, true), OsStr::new("f"), (1, 1));
    assert_eq!((store.unfinished(), store.finish_trouble()), (0, None));
    assert_eq!(store.get(a).and_then(|job| job.last_error), None);
    assert_eq!(store.counts().completed, 1);
}

fn restored_history_counts_and_lists(make: &Make) {
    let store = make(2);
    let mut finished = Vec::new();
    for n in 1..=3 {
        let a = id(n);
        let temporary = make(10);
        start(&*temporary, a);
        temporary.finish(a, &report(a, n != 2), OsStr::new("f"), (1, 1));
        finished.push(temporary.get(a).expect("finished"));
    }
    store.restore(finished, 40, 2);
    let counts = store.counts();
    assert_eq!((counts.completed, counts.failed), (40, 2));
    let (total, page) = store.list(None, 10, 0);
    assert_eq!(total, 2, "history holds 2");
    assert_eq!(
        page.iter().map(|job| job.id).collect::<Vec<_>>(),
        [id(3), id(2)]
    );
    assert_eq!(store.last_processed().map(|job| job.id), Some(id(3)));
    assert_eq!(store.recent(JobState::Failed, 5).len(), 1);
    let minutes = store.throughput();
    assert_eq!(minutes.len(), crate::job::THROUGHPUT_MINUTES);
}

fn expected_files_are_taken_once(make: &Make) {
    let store = make(10);
    let (kept, removed) = (id(1), id(2));
    store.expect_file((1, 1), kept);
    store.file_placed((1, 1), OsStr::new("a.csv"));
    store.expect_file((1, 2), removed);
    store.file_placed((1, 2), OsStr::new("b.csv"));
    store.expect_file((1, 3), id(3));
    store.withdraw_file((1, 3));
    let gone = store.sweep_expected(&mut |name, key| name == "a.csv" && key == (1, 1));
    assert_eq!(gone, vec![removed]);
    assert_eq!(store.take_expected((1, 2)), None);
    assert_eq!(store.take_expected((1, 3)), None);
    assert_eq!(store.take_expected((1, 1)), Some(kept));
    assert_eq!(store.take_expected((1, 1)), None);
}

#[derive(Debug, Clone)]
enum Op {
    Queue(u8),
    Start(u8),
    Finish(u8, bool),
    Forget(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(|n| Op::Queue(n % 40)),
        3 => any::<u8>().prop_map(|n| Op::Start(n % 40)),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(n, ok)| Op::Finish(n % 40, ok)),
        1 => any::<u8>().prop_map(|n| Op::Forget(n % 40)),
    ]
}

/// Random queue/start/finish/forget sequences: every listing equals what a plain model (a
/// list of (id, state) in the order each job entered its state) says, newest first.
fn listings_match_a_plain_model(make: &Make) {
    let mut runner = proptest::test_runner::TestRunner::default();
    let ops = proptest::collection::vec(op(), 1..400);
    let outcome = runner.run(&ops, |ops| {
        let history = 15;
        let store = make(history);
        // Entry order of every job the model still knows, oldest first.
        let mut model: Vec<(JobId, JobState)> = Vec::new();
        for op in ops {
            let position = |model: &Vec<(JobId, JobState)>, n: u8| {
                model.iter().position(|(job, _)| *job == id(n as u128))
            };
            match op {
                Op::Queue(n) => {
                    if position(&model, n).is_none() {
                        store.queue(id(n as u128), OsStr::new("f"), 1, SystemTime::now());
                        model.push((id(n as u128), JobState::Queued));
                    }
                }
                Op::Start(n) => match position(&model, n) {
                    Some(at) if model[at].1 == JobState::Queued => {
                        start(&*store, id(n as u128));
                        model.remove(at);
                        model.push((id(n as u128), JobState::Processing));
                    }
                    _ => {}
                },
                Op::Finish(n, ok) => match position(&model, n) {
                    Some(at) if model[at].1 == JobState::Processing => {
                        store.finish(
                            id(n as u128),
                            &report(id(n as u128), ok),
                            OsStr::new("f"),
                            (1, 1),
                        );
                        model.remove(at);
                        let state = if ok {
                            JobState::Completed
                        } else {
                            JobState::Failed
                        };
                        model.push((id(n as u128), state));
                        let finished: Vec<usize> = (0..model.len())
                            .filter(|&i| {
                                !matches!(model[i].1, JobState::Queued | JobState::Processing)
                            })
                            .collect();
                        if finished.len() > history {
                            model.remove(finished[0]);
                        }
                    }
                    _ => {}
                },
                Op::Forget(n) => {
                    if let Some(at) = position(&model, n) {
                        store.forget(id(n as u128));
                        model.remove(at);
                    }
                }
            }
        }
        let states = [
            None,
            Some(JobState::Queued),
            Some(JobState::Processing),
            Some(JobState::Completed),
            Some(JobState::Failed),
        ];
        for state in states {
            let active = |s: JobState| matches!(s, JobState::Queued | JobState::Processing);
            let newest = |finished: bool| {
                model
                    .iter()
                    .rev()
                    .filter(move |(_, s)| {
                        state.is_none_or(|state| *s == state) && active(*s) != finished
                    })
                    .map(|(job, _)| *job)
            };
            // Active jobs first, then finished ones.
            let expected: Vec<JobId> = newest(false).chain(newest(true)).collect();
            let (total, page) = store.list(state, 1000, 0);
            let got: Vec<JobId> = page.iter().map(|job| job.id).collect();
            if state.is_some() {
                prop_assert_eq!(&got, &expected, "state {:?}", state);
            } else {
                // Across both active states the order is by time, which ties within
                // a test this fast: compare as sets there.
                let mut got_sorted = got.clone();
                got_sorted.sort();
                let mut expected_sorted = expected.clone();
                expected_sorted.sort();
                prop_assert_eq!(got_sorted, expected_sorted);
            }
            prop_assert_eq!(total, expected.len());
            if state.is_none() {
                // Every job of the suite is binary: its counts are the model's finished jobs.
                let count = |want: JobState| model.iter().filter(|(_, s)| *s == want).count();
                let want = (count(JobState::Completed), count(JobState::Failed));
                let kinds = store.kinds();
                let got = kinds.first().map_or((0, 0), |k| (k.completed, k.failed));
                prop_assert!(kinds.len() <= 1 && kinds.iter().all(|k| k.kind == Kind::Binary));
                prop_assert_eq!(got, want);
            }
            let (_, second) = store.list(state, 3, 2);
            let got: Vec<JobId> = second.iter().map(|job| job.id).collect();
            if state.is_some() {
                let want: Vec<JobId> = expected.iter().skip(2).take(3).copied().collect();
                prop_assert_eq!(got, want);
            }
        }
        Ok(())
    });
    if let Err(err) = outcome {
        panic!("{err}");
    }
}
