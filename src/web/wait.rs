//! `?wait=D` on `POST /api/upload` and `POST /api/jobs/{id}/retry`: the answer is held until
//! every job of the request has finished, then given with each job and its report (200), or
//! the usual 202 once D has passed first.
//!
//! The wait only listens: the jobs are already in the pipeline when it begins, so a client
//! that goes away, a wait that runs out or a daemon that stops cancels nothing. It follows the
//! store's change feed (subscribed before the files are placed, so no finish can slip past),
//! and asks the store again every second and whenever it fell behind the feed: a job counts as
//! finished from the first finish either source shows, even if the history has dropped it since.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::web;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::health::Liveness;
use crate::job::{JobId, JobSnapshot, JobState};
use crate::store::JobStore;
use crate::web::ask;
use crate::web::error::ApiError;

/// The longest wait: long enough for a large file, short enough that a proxy in front of the
/// daemon or a client's own timeout does not cut the answer first. A longer one asked for is
/// this one: a client that sets a generous bound still gets its answer when the jobs finish.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// How often the store is asked again while nothing is heard from the feed.
const RECHECK: Duration = Duration::from_secs(1);

/// How a request that queues jobs is answered: `?next=PATH`, a form's way back (a redirect at
/// once), or `?wait=D`; neither, the 202 at once.
#[derive(Deserialize)]
pub struct AnswerQuery {
    next: Option<String>,
    wait: Option<String>,
}

impl AnswerQuery {
    /// The wait asked for, at most `MAX_WAIT` (`None` without `wait`, with `wait=0` or with
    /// `next`); 400 for a value that is not a duration.
    pub fn wait(&self) -> Result<Option<Duration>, ApiError> {
        let Some(text) = self.wait.as_deref() else {
            return Ok(None);
        };
        let wait = parse(text).map_err(ApiError::BadRequest)?;
        Ok((!wait.is_zero() && self.next.is_none()).then_some(wait))
    }

    /// A 303 to `next`, when it was given and is a local path.
    pub fn redirect(&self) -> Option<actix_web::HttpResponse> {
        crate::web::NextQuery {
            next: self.next.clone(),
        }
        .redirect()
    }
}

/// `30s`, `1m30s`, `500ms` (humantime's forms), or a number of seconds alone (`30`, `2.5`).
fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let seconds = text.parse::<f64>().ok().filter(|s| {
        s.is_finite() && *s >= 0.0 && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    let wait = match seconds {
        Some(seconds) => Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64())),
        None => humantime::parse_duration(text).map_err(|err| {
            format!("wait={text:?} is not a duration (e.g. 30s, 2m, 500ms): {err}")
        })?,
    };
    Ok(wait.min(MAX_WAIT))
}

/// A wait begun: the feed is followed from here on.
pub struct Waiter {
    receiver: broadcast::Receiver<JobSnapshot>,
    deadline: Instant,
}

impl Waiter {
    /// Starts following the feed; call it before the jobs can move.
    pub fn start(store: &dyn JobStore, wait: Duration) -> Waiter {
        Waiter {
            receiver: store.changes().subscribe(),
            deadline: Instant::now() + wait,
        }
    }

    /// Every job of `ids` as it finished, in that order; `None` when the wait ran out first or
    /// the daemon began stopping.
    pub async fn finished(
        mut self,
        store: &web::Data<dyn JobStore>,
        liveness: &Liveness,
        ids: &[JobId],
    ) -> Option<Vec<JobSnapshot>> {
        let mut done: HashMap<JobId, JobSnapshot> = HashMap::new();
        loop {
            let open: Vec<JobId> = ids
                .iter()
                .copied()
                .filter(|id| !done.contains_key(id))
                .collect();
            let now = ask(store, move |store| {
                open.iter().filter_map(|id| store.get(*id)).collect()
            })
            .await
            .ok()?;
            keep_finished(&mut done, now);
            if ids.iter().all(|id| done.contains_key(id)) {
                return Some(ids.iter().filter_map(|id| done.remove(id)).collect());
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || liveness.is_draining() {
                return None;
            }
            let heard = tokio::time::timeout(left.min(RECHECK), self.next_of(ids)).await;
            if let Ok(Some(job)) = heard {
                keep_finished(&mut done, vec![job]);
            }
        }
    }

    /// The next change of one of `ids`; `None` when the feed dropped changes for this
    /// receiver (the store is asked again).
    async fn next_of(&mut self, ids: &[JobId]) -> Option<JobSnapshot> {
        loop {
            match self.receiver.recv().await {
                Ok(job) if ids.contains(&job.id) => return Some(job),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return None,
                Err(RecvError::Closed) => {
                    // Nothing more will come: the periodic question to the store decides.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

fn keep_finished(done: &mut HashMap<JobId, JobSnapshot>, jobs: Vec<JobSnapshot>) {
    for job in jobs {
        if matches!(job.state, JobState::Completed | JobState::Failed) {
            done.entry(job.id).or_insert(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_read_as_durations_and_bounded() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse("inf").is_err() && parse("1e3").is_err());
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(MAX_WAIT));
        assert_eq!(parse("301s"), Ok(MAX_WAIT));
        assert_eq!(parse("18446744073709551615"), Ok(MAX_WAIT));
        assert!(parse("soon").unwrap_err().contains("not a duration"));
        assert!(parse("-3s").is_err());
        let query = |next: Option<&str>, wait: Option<&str>| AnswerQuery {
            next: next.map(str::to_string),
            wait: wait.map(str::to_string),
        };
        assert!(matches!(query(None, Some("0")).wait(), Ok(None)));
        assert!(matches!(query(None, None).wait(), Ok(None)));
        assert!(matches!(query(Some("/"), Some("5s")).wait(), Ok(None)));
        assert!(matches!(query(None, Some("5s")).wait(), Ok(Some(_))));
        assert!(query(Some("/"), Some("soon")).wait().is_err());
    }
}
