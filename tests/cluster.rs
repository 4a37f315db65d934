//! Cluster mode (`--redis`, SPEC §6) on the real binary and a real `redis-server` started here
//! on a free port: nodes register and list each other, a dead node goes down after
//! `--node-timeout`, a second live daemon with a taken name exits 2, reports name their node,
//! and a node whose Redis goes away keeps processing, says so on `/health`, and registers again
//! when a Redis (restarted empty) answers.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, RedisServer, Workspace, wait_until};
use serde_json::{Value, json};

/// The nodes `daemon` lists, as `(name, state)`.
fn nodes(daemon: &Daemon) -> Vec<(String, String)> {
    let (status, body) = daemon.get_json("/api/nodes");
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap_or_default().to_string(),
                        n["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `daemon`'s log says `text` (a work-sharing mode, for instance).
fn wait_for_log(daemon: &Daemon, text: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || daemon.log().contains(text)),
        "never said {text:?}:\n{}",
        daemon.log()
    );
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

#[test]
fn nodes_see_each_other_reports_name_their_node_and_a_dead_node_goes_down() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    // One folder tree, shared: that is a cluster.
    let ws = Workspace::new();
    let flags = |name: &'static str| {
        vec![
            "--redis".to_string(),
            url.clone(),
            "--node".to_string(),
            name.to_string(),
            "--node-timeout".to_string(),
            "2s".to_string(),
        ]
    };
    let args_a = flags("alpha");
    let args_b = flags("beta");
    let a = Daemon::start(
        &ws,
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let b = Daemon::start(
        &ws,
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let both = vec![pair("alpha", "up"), pair("beta", "up")];
    assert!(
        wait_until(Duration::from_secs(10), || nodes(&a) == both
            && nodes(&b) == both),
        "{:?} {:?}",
        nodes(&a),
        nodes(&b)
    );
    let (status, health) = b.get_json("/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["redis"], "up", "{health}");
    assert_eq!(health["node"], "beta", "{health}");

    ws.write("watch_dir/unprocessed/one.log", b"INFO hello\n");
    assert!(wait_until(Duration::from_secs(20), || {
        ws.files_in("watch_dir/processed").len() == 2
    }));
    let report: Value = ws.read_json("watch_dir/processed/one.log.report.json");
    let node = report["node"].as_str().unwrap_or_default();
    assert!(node == "alpha" || node == "beta", "{report}");
    // Exactly one of them scans the folder for the cluster.
    let scanning: Vec<bool> = [&a, &b]
        .iter()
        .map(|d| d.get_json("/health").1["scanner"] == true)
        .collect();
    assert_eq!(scanning.iter().filter(|s| **s).count(), 1, "{scanning:?}");

    // The dashboard's nodes table.
    let (status, page) = a.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"nodes\""), "{page}");
    assert!(
        page.contains("<td>alpha</td>") && page.contains("<td>beta</td>"),
        "{page}"
    );

    // A crash: no goodbye, its key expires after --node-timeout.
    b.kill();
    assert!(
        wait_until(Duration::from_secs(10), || nodes(&a)
            == vec![pair("alpha", "up"), pair("beta", "down")]),
        "{:?}",
        nodes(&a)
    );
}

#[test]
fn a_second_live_daemon_with_a_taken_name_exits_2() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let (ws_a, ws_b) = (Workspace::new(), Workspace::new());
    let _a = Daemon::start(&ws_a, &["--redis", &url, "--node", "alpha"], &[]);
    // The same tree seen from another machine: the same tree id, but not the same node lock
    // files (on one machine, the node lock alone would refuse the second daemon).
    let id = std::fs::read(ws_a.path("watch_dir/.file-processor.cluster")).expect("tree id");
    ws_b.write("watch_dir/.file-processor.cluster", &id);
    let out = ws_b.run(&[
        "--dir",
        "watch_dir",
        "--port",
        "0",
        "--redis",
        &url,
        "--node",
        "alpha",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = common::stderr(&out);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("\"alpha\" is already live"), "{stderr}");
    // On the same machine and tree, the node lock says so at once.
    let out = ws_a.run(&[
        "--dir",
        "watch_dir",
        "--port",
        "0",
        "--redis",
        &url,
        "--node",
        "alpha",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("already runs on these folders"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn without_redis_a_node_keeps_processing_and_registers_again_when_it_is_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    let a = Daemon::start(&ws, &["--redis", &url, "--node", "alpha"], &[]);
    let redis_state = |daemon: &Daemon| {
        let (status, health) = daemon.get_json("/health");
        assert_eq!(status, 200, "{health}");
        health["redis"].as_str().unwrap_or_default().to_string()
    };
    assert!(wait_until(Duration::from_secs(10), || redis_state(&a) == "up"));

    redis.stop();
    assert!(
        wait_until(Duration::from_secs(10), || redis_state(&a) == "down"),
        "{}",
        a.log()
    );
    // Claims are renames: files are still processed.
    ws.write("watch_dir/unprocessed/while-down.csv", b"user_id,n\nu1,1\n");
    assert!(wait_until(Duration::from_secs(20), || {
        ws.files_in("watch_dir/processed").len() == 2
    }));
    assert_eq!(
        nodes(&a),
        vec![pair("alpha", "up")],
        "itself, while Redis is down"
    );
    let (_, page) = a.get("/");
    assert!(page.contains("id=\"redis-down\""), "{page}");

    // Back, and empty: the node registers again.
    redis.restart();
    assert!(
        wait_until(Duration::from_secs(10), || redis_state(&a) == "up"),
        "{}",
        a.log()
    );
    assert!(wait_until(Duration::from_secs(10), || nodes(&a)
        == vec![pair("alpha", "up")]));
    assert!(a.log().contains("redis is down"), "{}", a.log());
    // And it stays up: the group the empty Redis lost, and connections that outlived the
    // restart, are mended without the state flickering back to down.
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(3) {
        assert_eq!(redis_state(&a), "up", "{}", a.log());
        let (_, page) = a.get("/");
        assert!(!page.contains("id=\"redis-down\""), "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cluster_flags_are_checked() {
    let ws = Workspace::new();
    for args in [
        &["--redis", "http://example.com"][..],
        &["--node", "alpha"][..],
        &["--redis", "redis://127.0.0.1:1/0", "--node", "a b"][..],
        &["--redis", "redis://127.0.0.1:1/0", "--node-timeout", "1s"][..],
    ] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = common::stderr(&out);
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
    }
}

/// The files in `rel` whose names contain `part`.
fn named(ws: &Workspace, rel: &str, part: &str) -> Vec<String> {
    ws.files_in(rel)
        .into_iter()
        .filter(|name| name.contains(part))
        .collect()
}

#[test]
fn two_nodes_share_one_tree_and_every_file_ends_once() {
    let Some((_redis, ws, _a, _b)) = two_nodes() else {
        return;
    };
    let count = 200;
    for i in 0..count {
        // Written aside, then renamed in: each file appears whole.
        let body = format!("INFO file {i}\n").repeat(i + 1);
        let aside = ws.write(&format!("aside/f{i}.log"), body.as_bytes());
        std::fs::rename(&aside, ws.path(&format!("watch_dir/unprocessed/f{i}.log")))
            .expect("rename");
    }
    assert!(
        wait_until(Duration::from_secs(60), || {
            ws.files_in("watch_dir/processed").len() == 2 * count
        }),
        "{:?}",
        ws.files_in("watch_dir/processed").len()
    );
    for i in 0..count {
        let body = format!("INFO file {i}\n").repeat(i + 1);
        let got = std::fs::read(ws.path(&format!("watch_dir/processed/f{i}.log"))).expect("file");
        assert_eq!(got, body.as_bytes(), "f{i}.log");
        let report = ws.read_json(&format!("watch_dir/processed/f{i}.log.report.json"));
        let node = report["node"].as_str().unwrap_or_default();
        assert!(node == "a" || node == "b", "{report}");
    }
    assert!(ws.files_in("watch_dir/underprocess").is_empty());
    assert!(ws.files_in("watch_dir/failed").is_empty());
    assert!(ws.files_in("watch_dir/unprocessed").is_empty());
}

/// Node `a` (`--node-timeout 2s`) on the shared folders, once it has taken `name` over from a
/// node it takes for dead and finished it: `processed/` holds `name` and its report, alone.
fn start_taker(ws: &Workspace, url: &str, name: &str) -> Daemon {
    let a = Daemon::start(
        ws,
        &["--redis", url, "--node", "a", "--node-timeout", "2s"],
        &[],
    );
    let report = format!("{name}.report.json");
    assert!(
        wait_until(Duration::from_secs(20), || {
            ws.files_in("watch_dir/processed") == [name, report.as_str()]
        }),
        "{name}: {:?} {:?}\n{}",
        ws.files_in("watch_dir/processed"),
        ws.files_in("watch_dir/underprocess"),
        a.log()
    );
    a
}

#[test]
fn a_dead_nodes_claim_is_taken_over_and_ends_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    // After its claim the node dies with the file in underprocess/; after its report, with
    // the report published and the file not yet beside it.
    for point in ["after-claim", "after-report"] {
        let ws = Workspace::new();
        let mut b = Daemon::start(
            &ws,
            &["--redis", &url, "--node", "b", "--node-timeout", "2s"],
            &[("FP_CRASH_AT", point)],
        );
        ws.write("watch_dir/unprocessed/held.log", b"ERROR one\nINFO two\n");
        assert!(
            b.wait(Duration::from_secs(20)).is_some(),
            "{point}: b never crashed"
        );
        let held = named(&ws, "watch_dir/underprocess", "+b+held.log");
        assert_eq!(
            held.len(),
            1,
            "{point}: {:?}",
            ws.files_in("watch_dir/underprocess")
        );
        let job_id = held[0].split('+').next().unwrap_or_default().to_string();

        let a = start_taker(&ws, &url, "held.log");
        assert!(ws.files_in("watch_dir/underprocess").is_empty(), "{point}");
        let bytes = std::fs::read(ws.path("watch_dir/processed/held.log")).expect("file");
        assert_eq!(bytes, b"ERROR one\nINFO two\n");
        let report = ws.read_json("watch_dir/processed/held.log.report.json");
        assert_eq!(report["job_id"], job_id.as_str(), "{point}: {report}");
        // The analysis is the taker's, unless the dead node's report was already out.
        let analysed_by = if point == "after-claim" { "a" } else { "b" };
        assert_eq!(report["node"], analysed_by, "{point}: {report}");
        assert!(a.log().contains("took over"), "{point}: {}", a.log());
    }
}

#[test]
fn a_single_daemon_and_a_cluster_never_share_folders() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    let _single = Daemon::start(&ws, &[], &[]);
    let out = ws.run(&["--dir", "watch_dir", "--port", "0", "--redis", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("already running"),
        "{}",
        common::stderr(&out)
    );
}

/// Drops `count` files named `PREFIXi.log` into the shared `unprocessed/`, each whole.
fn drop_files(ws: &Workspace, prefix: &str, count: usize) {
    for i in 0..count {
        let aside = ws.write(
            &format!("aside/{prefix}{i}.log"),
            format!("INFO {i}\n").as_bytes(),
        );
        std::fs::rename(
            &aside,
            ws.path(&format!("watch_dir/unprocessed/{prefix}{i}.log")),
        )
        .expect("rename");
    }
}

fn completed(daemon: &Daemon) -> u64 {
    daemon.counts()["completed"].as_u64().unwrap_or(0)
}

/// A real `redis-server` and two nodes, `a` and `b`, on one new folder tree; `None` on a
/// machine without redis-server. Bound in this order, they stop nodes first, Redis last.
fn two_nodes() -> Option<(RedisServer, Workspace, Daemon, Daemon)> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ws = Workspace::new();
    let a = Daemon::start(&ws, &["--redis", &url, "--node", "a"], &[]);
    let b = Daemon::start(&ws, &["--redis", &url, "--node", "b"], &[]);
    Some((redis, ws, a, b))
}

/// Drops `count` files, and waits until they are processed and every one of `nodes` counts
/// them all (each learns the others' finishes through the change stream).
fn drop_and_see_on_every_node(ws: &Workspace, nodes: &[&Daemon], prefix: &str, count: usize) {
    drop_files(ws, prefix, count);
    assert!(wait_until(Duration::from_secs(60), || {
        ws.files_in("watch_dir/processed").len() == 2 * count
    }));
    assert!(
        wait_until(Duration::from_secs(20), || nodes
            .iter()
            .all(|node| completed(node) == count as u64)),
        "{:?}",
        nodes.iter().map(|node| node.counts()).collect::<Vec<_>>()
    );
}

#[test]
fn every_node_answers_for_every_job_and_the_counts_agree() {
    let Some((_redis, ws, a, b)) = two_nodes() else {
        return;
    };
    let count = 30;
    drop_and_see_on_every_node(&ws, &[&a, &b], "f", count);
    // /metrics: summed over the nodes, each node's own jobs and the cluster's gauges (one
    // reporter at a time) both count every job once.
    let sum_over_nodes = |prefix: &str| -> u64 {
        [&a, &b]
            .iter()
            .map(|daemon| {
                let (_, text) = daemon.get("/metrics");
                text.lines()
                    .filter(|line| line.starts_with(prefix))
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            sum_over_nodes("file_processor_cluster_jobs{") == count as u64
                && sum_over_nodes("file_processor_node_jobs{") == count as u64
        }),
        "{}\n{}",
        a.get("/metrics").1,
        b.get("/metrics").1
    );
    for i in 0..count {
        let report = ws.read_json(&format!("watch_dir/processed/f{i}.log.report.json"));
        let id = report["job_id"].as_str().unwrap_or_default();
        for daemon in [&a, &b] {
            let (status, job) = daemon.get_json(&format!("/api/jobs/{id}"));
            assert_eq!(status, 200, "f{i}: {job}");
            assert_eq!(job["state"], "completed", "{job}");
            assert_eq!(job["report"]["node"], report["node"], "{job}");
        }
    }
}

/// The Redis key of this tree's stream `name` (`fp:<the tree's id>:<name>`).
fn stream_key(ws: &Workspace, name: &str) -> String {
    let tree = std::fs::read_to_string(ws.path("watch_dir/.file-processor.cluster"))
        .expect("the tree's id");
    format!("fp:{}:{name}", tree.trim())
}

/// The change stream is data anyone with the Redis may write: garbage under the encoding's
/// name, a batch that claims four billion changes, one cut short, an empty one, and an older
/// version's JSON are skipped, nothing of them shows, and each node's feed goes on to carry
/// the other's finishes.
#[test]
fn hostile_batches_in_the_change_stream_are_skipped_and_the_feed_goes_on() {
    let Some((redis, ws, a, b)) = two_nodes() else {
        return;
    };
    let stream = stream_key(&ws, "changes");
    let queued_json = br#"[{"queued":{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","name":"x","size_bytes":1,"queued_at":1}}]"#;
    let hostile: [(&str, &[u8]); 5] = [
        ("changes-postcard-1", &[0xff; 64]),
        ("changes-postcard-1", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("changes-postcard-1", &[1, 0]),
        ("changes-postcard-1", b""),
        ("changes", queued_json),
    ];
    for (field, bytes) in hostile {
        let reply = redis.command(&[
            b"XADD",
            stream.as_bytes(),
            b"*",
            b"node",
            b"mallory",
            field.as_bytes(),
            bytes,
        ]);
        assert!(reply.starts_with('$'), "XADD answered {reply}");
    }
    drop_and_see_on_every_node(&ws, &[&a, &b], "h", 10);
    for daemon in [&a, &b] {
        assert_eq!(daemon.counts()["queued"], 0, "{}", daemon.counts());
        assert_eq!(daemon.get("/health").0, 200);
    }
}

/// The ready stream is data anyone with the Redis may write too: entries that do not decode
/// (garbage, a list that claims four billion files, a cut one, an empty one), one that offers
/// a file named `../escaped`, and an older version's fields offer nothing, are acknowledged
/// (none stays pending, to be read again after `--node-timeout`), and the nodes go on to share
/// real files.
#[test]
fn hostile_entries_in_the_ready_stream_offer_nothing_and_are_acknowledged() {
    let Some((redis, ws, a, b)) = two_nodes() else {
        return;
    };
    let stream = stream_key(&ws, "ready");
    // One file, as a node encodes it: job id 5, name, size 1, queued at 1 ms.
    let mut escaping = vec![1, 5, 10];
    escaping.extend_from_slice(b"../escaped");
    escaping.extend_from_slice(&[1, 1]);
    let hostile: [(&str, &[u8]); 6] = [
        ("offers-postcard-1", &[0xff; 64]),
        ("offers-postcard-1", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("offers-postcard-1", &[1, 0]),
        ("offers-postcard-1", b""),
        ("offers-postcard-1", &escaping),
        ("name0", b"../../escaped"),
    ];
    for (field, bytes) in hostile {
        let reply = redis.command(&[b"XADD", stream.as_bytes(), b"*", field.as_bytes(), bytes]);
        assert!(reply.starts_with('$'), "XADD answered {reply}");
    }
    drop_and_see_on_every_node(&ws, &[&a, &b], "r", 60);
    let mut connection = redis::Client::open(redis.url())
        .and_then(|client| client.get_connection())
        .expect("a connection to redis");
    let pending = |connection: &mut redis::Connection| -> Option<usize> {
        redis::Commands::xpending::<_, _, redis::streams::StreamPendingReply>(
            connection, &stream, "workers",
        )
        .ok()
        .map(|reply| reply.count())
    };
    assert!(
        wait_until(Duration::from_secs(30), || pending(&mut connection)
            == Some(0)),
        "entries left pending: {:?}",
        pending(&mut connection)
    );
    // And none is left undelivered (pending counts only what was read): a new reader of the
    // group finds nothing.
    let options = redis::streams::StreamReadOptions::default()
        .group("workers", "probe")
        .count(100);
    let unread: redis::streams::StreamReadReply =
        redis::Commands::xread_options(&mut connection, &[&stream], &[">"], &options)
            .expect("XREADGROUP");
    assert!(
        unread.keys.iter().all(|key| key.ids.is_empty()),
        "entries never read: {:?}",
        unread.keys
    );
    for outside in [
        "escaped",
        "watch_dir/escaped",
        "watch_dir/underprocess/escaped",
    ] {
        assert!(!ws.path(outside).exists(), "{outside}");
    }
    for daemon in [&a, &b] {
        assert_eq!(daemon.get("/health").0, 200);
    }
}

#[test]
fn counts_converge_once_redis_is_back() {
    let Some((mut redis, ws, a, b)) = two_nodes() else {
        return;
    };
    redis.stop();
    let down = |daemon: &Daemon| daemon.get_json("/health").1["redis"] == "down";
    assert!(wait_until(Duration::from_secs(10), || down(&a) && down(&b)));
    let count = 12;
    drop_files(&ws, "g", count);
    assert!(wait_until(Duration::from_secs(60), || {
        ws.files_in("watch_dir/processed").len() == 2 * count
    }));
    // Each node knows its own jobs now; once Redis is back (empty), each publishes what it
    // did meanwhile, and both see all of them.
    redis.restart();
    assert!(
        wait_until(Duration::from_secs(20), || completed(&a) == count as u64
            && completed(&b) == count as u64),
        "{} {}",
        a.counts(),
        b.counts()
    );
}

#[test]
fn an_upload_or_a_retry_on_any_node_keeps_its_job_id_everywhere() {
    let Some((_redis, ws, a, b)) = two_nodes() else {
        return;
    };
    let (status, body) = common::upload(
        &a,
        vec![
            ("up.log", b"INFO up\n".as_slice()),
            ("bad.json", b"{".as_slice()),
        ],
        None,
    );
    assert_eq!(status, 202, "{body}");
    let ids: Vec<String> = body["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .filter_map(|j| j["job_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), 2, "{body}");
    let state_on = |daemon: &Daemon, id: &str| {
        daemon.get_json(&format!("/api/jobs/{id}")).1["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (id, end) in ids.iter().zip(["completed", "failed"]) {
        assert!(
            wait_until(Duration::from_secs(20), || state_on(&a, id) == end
                && state_on(&b, id) == end),
            "{id}: {} {}",
            state_on(&a, id),
            state_on(&b, id)
        );
    }
    let report = ws.read_json("watch_dir/processed/up.log.report.json");
    assert_eq!(report["job_id"], ids[0].as_str());
    assert_eq!(
        report["node"], "a",
        "an upload is claimed by the node it came to"
    );

    // The failed one, retried on the other node: the same job runs again there, and the
    // first node sees it finish again.
    let finished_at = |daemon: &Daemon| {
        daemon.get_json(&format!("/api/jobs/{}", ids[1])).1["finished_at"].clone()
    };
    let first_finish = finished_at(&a);
    let (status, body) = b.retry(&ids[1]);
    assert_eq!(status, 202, "{body}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let now = finished_at(&a);
            now != first_finish && now.is_string() && state_on(&a, &ids[1]) == "failed"
        }),
        "{first_finish} {}",
        finished_at(&a)
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            // The old report is set aside while the job runs again: absent for a moment.
            let report: Option<Value> =
                std::fs::read(ws.path("watch_dir/failed/bad.json.error.json"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            report.is_some_and(|report| report["node"] == "b") && state_on(&a, &ids[1]) == "failed"
        }),
        "{:?}",
        ws.files_in("watch_dir/failed")
    );
    let report = ws.read_json("watch_dir/failed/bad.json.error.json");
    assert_eq!(report["job_id"], ids[1].as_str());
    assert!(ws.files_in("watch_dir/unprocessed").is_empty());
    assert!(ws.files_in("watch_dir/underprocess").is_empty());
}

/// `rediss://`: a redis-server speaking TLS only, with a certificate from a CA made here. A
/// node that trusts the CA (`SSL_CERT_FILE`, as rustls-native-certs reads it) joins; one that
/// does not refuses the server and says Redis is down.
#[test]
fn rediss_connects_over_tls_and_checks_the_certificate() {
    let Some(plain) = RedisServer::start() else {
        return;
    };
    drop(plain);
    let ws = Workspace::new();
    let dir = ws.path("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fp-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let answers = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(answers, "redis-server with TLS did not listen");
    let url = format!("rediss://127.0.0.1:{port}/0");
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().expect("path");
    let trusted = Daemon::start(
        &ws,
        &["--redis", &url, "--node", "trusting"],
        &[("SSL_CERT_FILE", ca)],
    );
    let other = Workspace::new();
    let untrusted = Daemon::start(
        &other,
        &["--redis", &url, "--node", "doubting"],
        &[("SSL_CERT_FILE", "/dev/null")],
    );
    let redis_state = |daemon: &Daemon| daemon.get_json("/health").1["redis"].clone();
    assert!(
        wait_until(Duration::from_secs(10), || redis_state(&trusted) == "up"
            && nodes(&trusted) == vec![pair("trusting", "up")]),
        "{}",
        trusted.log()
    );
    assert_eq!(redis_state(&untrusted), "down", "{}", untrusted.log());
    assert!(
        untrusted.log().contains("certificate"),
        "{}",
        untrusted.log()
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// A node cut off from the others' Redis (here: it uses another Redis, so they never see it
/// alive) while it analyses a file: they take the file over under it. The file still ends in
/// `processed/` once with one report, the taker's; the cut-off node writes none.
#[test]
fn a_node_taken_for_dead_while_it_works_writes_no_second_report() {
    taken_over_while_paused_at(
        "after-analysis",
        &["no report", "no longer this node's"],
        "a",
    );
}

/// The same, with the takeover landing after the cut-off node checked that it still holds the
/// file and before it publishes its report: the node publishes, its move beside the report
/// finds the claim gone, and it withdraws the report. Without the withdrawal a second report
/// would stand beside the taker's.
#[test]
fn a_report_published_after_a_takeover_is_withdrawn() {
    taken_over_while_paused_at("before-report", &["nothing to finish"], "a");
}

/// The takeover landing after the cut-off node published its report and before it moved the
/// file: the taker adopts that report (as one published before a crash) and moves the file
/// beside it, so the cut-off node's move finds its claim gone and its file beside its report,
/// which stays. Withdrawn, it would leave the file in `processed/` without a report.
#[test]
fn a_report_the_taker_adopted_is_not_withdrawn() {
    taken_over_while_paused_at("after-report", &["the report stays"], "b");
}

/// Node b (on a Redis of its own) claims `contested.log` and waits at `pause`; node a takes the
/// file over and finishes it; b then goes on and says one of `said` in its log. The file ends
/// once in `processed/`, beside one report, written by node `author`.
fn taken_over_while_paused_at(pause: &str, said: &[&str], author: &str) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(elsewhere) = RedisServer::start() else {
        return;
    };
    let ws = Workspace::new();
    let cut_off = elsewhere.url();
    let b = Daemon::start(
        &ws,
        &["--redis", &cut_off, "--node", "b"],
        &[("FP_PAUSE_AT", &format!("{pause}:15000"))],
    );
    ws.write("watch_dir/unprocessed/contested.log", b"WARN contested\n");
    assert!(wait_until(Duration::from_secs(20), || {
        named(&ws, "watch_dir/underprocess", "+b+contested.log").len() == 1
    }));
    assert!(
        wait_until(Duration::from_secs(20), || b
            .log()
            .contains(&format!("FP_PAUSE_AT={pause}"))),
        "{}",
        b.log()
    );
    let url = redis.url();
    let _a = start_taker(&ws, &url, "contested.log");
    // b wakes up to a file that is not its own any more.
    assert!(
        wait_until(Duration::from_secs(40), || said
            .iter()
            .any(|text| b.log().contains(text))),
        "{}",
        b.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ws.files_in("watch_dir/processed"),
        ["contested.log", "contested.log.report.json"]
    );
    assert!(
        ws.files_in("watch_dir/failed").is_empty(),
        "{:?}",
        ws.files_in("watch_dir/failed")
    );
    assert!(
        ws.files_in("watch_dir/underprocess").is_empty(),
        "{:?}",
        ws.files_in("watch_dir/underprocess")
    );
    let report = ws.read_json("watch_dir/processed/contested.log.report.json");
    assert_eq!(report["node"], author, "{report}");
}

/// Nodes on two folder trees sharing one Redis are two clusters: each processes its own
/// files, and each lists only itself.
#[test]
fn nodes_on_other_trees_are_other_clusters() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let (ws_a, ws_b) = (Workspace::new(), Workspace::new());
    let a = Daemon::start(&ws_a, &["--redis", &url, "--node", "a"], &[]);
    let b = Daemon::start(&ws_b, &["--redis", &url, "--node", "b"], &[]);
    ws_a.write("watch_dir/unprocessed/mine.log", b"INFO a\n");
    ws_b.write("watch_dir/unprocessed/mine.log", b"INFO b\n");
    for (ws, daemon, name) in [(&ws_a, &a, "a"), (&ws_b, &b, "b")] {
        assert!(
            wait_until(Duration::from_secs(20), || {
                ws.files_in("watch_dir/processed").len() == 2
            }),
            "{name}: {}",
            daemon.log()
        );
        let report = ws.read_json("watch_dir/processed/mine.log.report.json");
        assert_eq!(report["node"], name, "{report}");
        assert_eq!(nodes(daemon), vec![pair(name, "up")]);
    }
}

/// Work sharing with a node that dies: a scans and offers (with one worker, so it claims 8
/// files itself and offers the rest); b reads offers and is killed at `crash_at`; 200 log
/// files of 2,000 lines are moved in. Returns once b is dead and every file is in
/// `processed/` (asserted within 60 s), with b's log, for the caller's own checks; `None`
/// where there is no `redis-server` (the test is skipped).
fn offers_with_a_node_that_dies(
    crash_at: &str,
    pause_at: Option<&str>,
) -> Option<(RedisServer, Workspace, Daemon, String)> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ws = Workspace::new();
    let a = Daemon::start(
        &ws,
        &[
            "--redis",
            &url,
            "--node",
            "a",
            "--node-timeout",
            "2s",
            "--workers",
            "1",
        ],
        &[],
    );
    wait_for_log(&a, "this node scans and offers");
    let mut hooks = vec![("FP_CRASH_AT", crash_at)];
    hooks.extend(pause_at.map(|pause| ("FP_PAUSE_AT", pause)));
    let mut b = Daemon::start(
        &ws,
        &["--redis", &url, "--node", "b", "--node-timeout", "2s"],
        &hooks,
    );
    wait_for_log(&b, "another node scans");
    for i in 0..OFFERED_FILES {
        ws.write(&format!("stage/f{i:03}.log"), &offered_body());
    }
    for i in 0..OFFERED_FILES {
        std::fs::rename(
            ws.path(&format!("stage/f{i:03}.log")),
            ws.path(&format!("watch_dir/unprocessed/f{i:03}.log")),
        )
        .expect("move in");
    }
    assert!(
        b.wait(Duration::from_secs(30)).is_some(),
        "b never reached {crash_at}:\n{}",
        b.log()
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            ws.files_in("watch_dir/processed").len() == 2 * OFFERED_FILES
        }),
        "{} processed, waiting: {:?}, claimed: {:?}\n{}",
        ws.files_in("watch_dir/processed").len() / 2,
        ws.files_in("watch_dir/unprocessed"),
        ws.files_in("watch_dir/underprocess"),
        a.log()
    );
    let b_log = b.log();
    Some((redis, ws, a, b_log))
}

const OFFERED_FILES: usize = 200;

fn offered_body() -> Vec<u8> {
    b"2026-11-30T10:00:00Z INFO a line long enough to take a moment to count\n".repeat(2000)
}

/// Every offered file ended once, bytes unchanged, with a report by one of `nodes`; no folder
/// holds anything else.
fn assert_offered_files_ended_once(ws: &Workspace, nodes: &[&str]) {
    let body = offered_body();
    assert_eq!(ws.files_in("watch_dir/processed").len(), 2 * OFFERED_FILES);
    for i in 0..OFFERED_FILES {
        let report = ws.read_json(&format!("watch_dir/processed/f{i:03}.log.report.json"));
        assert!(
            nodes.iter().any(|node| report["node"] == *node),
            "{nodes:?}: {report}"
        );
        assert_eq!(report["text"]["lines"], 2000, "{report}");
        assert_eq!(
            std::fs::read(ws.path(&format!("watch_dir/processed/f{i:03}.log"))).expect("read"),
            body
        );
    }
    assert!(ws.files_in("watch_dir/underprocess").is_empty());
    assert!(ws.files_in("watch_dir/unprocessed").is_empty());
    assert!(ws.files_in("watch_dir/failed").is_empty());
}

/// Work sharing: a node that read offers and died before claiming them leaves their files in
/// `unprocessed/`; another node takes the offers over once the dead reader's entries have
/// been idle for `--node-timeout`, and every file ends once.
#[test]
fn an_offer_read_by_a_node_that_dies_is_not_lost() {
    let Some((_redis, ws, _a, _)) = offers_with_a_node_that_dies("after-offer", None) else {
        return;
    };
    assert_offered_files_ended_once(&ws, &["a"]);
}

/// Work sharing: offers travel up to 8 files to a stream entry, acknowledged once the last of
/// them is dealt with. A node that claimed three files of its offers and died before the
/// fourth leaves its entries unacknowledged: another node takes them over after
/// `--node-timeout` (the claimed files as the dead node's claims, the rest as offers it
/// claims itself), and every file still ends once.
#[test]
fn a_node_that_dies_midway_through_its_offers_loses_none_of_them() {
    dies_after_three_offered_claims(None);
}

/// b claims three offered files (waiting `pause_at` before each) and is killed at the
/// fourth; every file still ends once, by a or b.
fn dies_after_three_offered_claims(pause_at: Option<&str>) {
    let Some((_redis, ws, _a, b_log)) = offers_with_a_node_that_dies("after-offer:4", pause_at)
    else {
        return;
    };
    assert_eq!(
        b_log.matches("claimed the offered").count(),
        3,
        "b claims three offered files, then dies:\n{b_log}"
    );
    assert_offered_files_ended_once(&ws, &["a", "b"]);
}

/// The same death, with b waiting 300 ms before each offered claim, so that whatever it had
/// queued for Redis leaves before it dies. An entry is acknowledged only once all of its files
/// are dealt with: b's half-done entry is still b's when it dies, taken over after
/// `--node-timeout`, and its last files are claimed within the helper's 60 s. Had b
/// acknowledged the entry at its first claim, those files would wait in `unprocessed/` for
/// the scanning node to offer them again, two minutes later (checked: with the acknowledgement
/// sent at the first claim, this test fails).
#[test]
fn an_entry_is_acknowledged_only_once_all_its_files_are_dealt_with() {
    dies_after_three_offered_claims(Some("after-offer:300"));
}

/// Three nodes on one tree take a burst; one is SIGKILLed mid-way, then Redis is stopped for a
/// while and started again empty. Every file still ends in `processed/` exactly once, bytes
/// unchanged, with one report, and nothing is left claimed.
#[test]
fn three_nodes_a_kill_and_a_redis_restart_mid_burst_lose_nothing() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    let flags = |name: &'static str| {
        vec![
            "--redis",
            "",
            "--node",
            name,
            "--node-timeout",
            "2s",
            "--workers",
            "1",
            "--reconcile-ms",
            "1000",
        ]
    };
    let start = |name: &'static str| {
        let mut args = flags(name);
        args[1] = &url;
        Daemon::start(&ws, &args, &[])
    };
    let a = start("a");
    let b = start("b");
    let c = start("c");
    let count = 300;
    let body = |i: usize| format!("INFO burst {i}\n").repeat(1 + i % 50);
    for i in 0..count {
        let aside = ws.write(&format!("aside/b{i}.log"), body(i).as_bytes());
        std::fs::rename(&aside, ws.path(&format!("watch_dir/unprocessed/b{i}.log")))
            .expect("rename");
    }
    let processed = || ws.files_in("watch_dir/processed").len() / 2;
    assert!(wait_until(Duration::from_secs(60), || processed() >= 50));
    c.kill();
    assert!(wait_until(Duration::from_secs(60), || processed() >= 150));
    redis.stop();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    assert!(
        wait_until(Duration::from_secs(90), || processed() == count),
        "{} of {count}; unprocessed {:?}, underprocess {:?}",
        processed(),
        ws.files_in("watch_dir/unprocessed").len(),
        ws.files_in("watch_dir/underprocess")
    );
    assert!(wait_until(Duration::from_secs(20), || {
        ws.files_in("watch_dir/underprocess").is_empty()
    }));
    for i in 0..count {
        let got = std::fs::read(ws.path(&format!("watch_dir/processed/b{i}.log"))).expect("file");
        assert_eq!(got, body(i).as_bytes(), "b{i}.log");
        let report = ws.read_json(&format!("watch_dir/processed/b{i}.log.report.json"));
        assert_eq!(report["file"], format!("b{i}.log"));
    }
    assert_eq!(
        ws.files_in("watch_dir/processed").len(),
        2 * count,
        "one report each"
    );
    assert!(ws.files_in("watch_dir/failed").is_empty());
    // The views: jobs the dead node had offered, or whose last changes were lost, may be
    // shown queued for a while; the scanning node sweeps them (after 30 s) against the
    // folders. (Their counts may still miss a dead node's last finishes: see the README.)
    let queued = |daemon: &Daemon| daemon.counts()["queued"].as_u64().unwrap_or(u64::MAX);
    assert!(
        wait_until(Duration::from_secs(90), || queued(&a) == 0
            && queued(&b) == 0),
        "{} {}",
        a.counts(),
        b.counts()
    );
}

/// A node killed outright before it told the others of its last finishes: once it is seen
/// dead, the others read its recent reports back, and their counts and job lists hold them.
#[test]
fn a_dead_nodes_untold_finishes_are_read_back_from_its_reports() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    // b scans and runs every file, and never publishes a change. A node timeout of 5 s, not 2,
    // so that a loaded machine does not hand b's scanner lease to a mid-test.
    let b = Daemon::start(
        &ws,
        &["--redis", &url, "--node", "b", "--node-timeout", "5s"],
        &[("FP_PAUSE_AT", "before-publish:600000")],
    );
    wait_for_log(&b, "this node scans and offers");
    let a = Daemon::start(
        &ws,
        &["--redis", &url, "--node", "a", "--node-timeout", "5s"],
        &[],
    );
    const FILES: usize = 5;
    for i in 0..FILES {
        ws.write(&format!("watch_dir/unprocessed/told{i}.log"), b"INFO x\n");
    }
    ws.write("watch_dir/unprocessed/bad.json", b"{not json");
    assert!(
        wait_until(Duration::from_secs(20), || {
            ws.files_in("watch_dir/processed").len() == 2 * FILES
                && ws.files_in("watch_dir/failed").len() == 2
        }),
        "{}",
        b.log()
    );
    let counts = |daemon: &Daemon| {
        let (_, status) = daemon.get_json("/api/status");
        (
            status["counts"]["completed"].clone(),
            status["counts"]["failed"].clone(),
        )
    };
    // Which node ran each file, as its report says. b is meant to run them all; under load a
    // may take the scanner lease from b for a moment and run some itself, and those a knows.
    let ran_by = |node: &str| -> (usize, usize) {
        let count = |folder: &str, suffix: &str| {
            ws.files_in(&format!("watch_dir/{folder}"))
                .iter()
                .filter_map(|name| name.strip_suffix(suffix))
                .filter(|file| {
                    ws.read_json(&format!("watch_dir/{folder}/{file}{suffix}"))["node"] == node
                })
                .count()
        };
        (
            count("processed", ".report.json"),
            count("failed", ".error.json"),
        )
    };
    let by_b = ran_by("b");
    assert!(by_b.0 + by_b.1 > 0, "b ran nothing: {}", b.log());
    let by_a = ran_by("a");
    assert_eq!(
        counts(&a),
        (json!(by_a.0), json!(by_a.1)),
        "b told a nothing yet: a knows only its own"
    );
    b.kill();
    assert!(
        wait_until(Duration::from_secs(30), || counts(&a)
            == (json!(FILES), json!(1))),
        "{:?}\n{}",
        counts(&a),
        a.log()
    );
    let report = ws.read_json("watch_dir/processed/told0.log.report.json");
    let (status, job) = a.get_json(&format!(
        "/api/jobs/{}",
        report["job_id"].as_str().unwrap_or("")
    ));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "completed", "{job}");
}

/// A node that does not scan stops watching `unprocessed/`; when the scanning node dies and
/// it takes the lease, it watches again: a file dropped then is found by its watch (the
/// reconcile scan is ten minutes away).
#[test]
fn a_node_that_takes_the_scanner_lease_watches_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    let flags = |name| {
        vec![
            "--redis".to_string(),
            url.clone(),
            "--node".to_string(),
            name,
            "--node-timeout".to_string(),
            "2s".to_string(),
            "--reconcile-ms".to_string(),
            "600000".to_string(),
        ]
    };
    let a_args = flags("a".to_string());
    let a = Daemon::start(
        &ws,
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    wait_for_log(&a, "this node scans and offers");
    let b_args = flags("b".to_string());
    let b = Daemon::start(
        &ws,
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    wait_for_log(&b, "another node scans");
    a.kill();
    assert!(
        wait_until(Duration::from_secs(15), || b
            .log()
            .contains("this node scans and offers")),
        "{}",
        b.log()
    );
    ws.write("watch_dir/unprocessed/later.log", b"INFO later\n");
    assert!(
        wait_until(Duration::from_secs(15), || ws
            .files_in("watch_dir/processed")
            .contains(&"later.log".to_string())),
        "{:?}\n{}",
        ws.files_in("watch_dir/unprocessed"),
        b.log()
    );
    let report = ws.read_json("watch_dir/processed/later.log.report.json");
    assert_eq!(report["node"], "b", "{report}");
}
