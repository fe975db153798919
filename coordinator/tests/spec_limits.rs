//! Sweep limits as a client meets them over gRPC: a spec of a few hundred bytes that asks
//! for a million trials, or one past the size limit, is refused at once as INVALID_ARGUMENT,
//! naming the limit and the `allsweep serve` flag that raises it, and nothing is stored.

#![allow(clippy::unwrap_used)]

mod common;

use allsweep_coordinator::client::{self, UserClient};
use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store::{self, Store};
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A coordinator with the default limits, served in this process on a fresh SQLite file.
struct Served {
    client: UserClient,
    store: Arc<dyn Store>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("allsweep.db").display())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let options = ServeOptions::new(dir.path().join("artifacts"), Duration::from_secs(30));
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(serve(listener, store.clone(), options, shutdown));
    let client = client::user(&address, None).await.unwrap();
    Served { client, store, _stop: stop, _dir: dir }
}

/// Ten seeds times five axes of ten valid values each: a million trials.
fn million(values: usize) -> SyntheticSpec {
    let list = |f: &dyn Fn(usize) -> String| format!("[{}]", (1..=values).map(f).collect::<Vec<_>>().join(", "));
    SyntheticSpec::new("a million")
        .seeds(0..values as u64)
        .grid("loss.gamma", list(&|i| format!("{:.1}", i as f64 / 10.0)))
        .grid("loss.omega", list(&|i| i.to_string()))
        .grid("loss.epsilon", list(&|i| format!("{i}.5")))
        .grid("train.lr", list(&|i| format!("{i}e-4")))
        .grid("train.epochs", list(&|i| i.to_string()))
}

async fn refused(client: &mut UserClient, text: &str) -> tonic::Status {
    client.submit(pb::SubmitRequest { spec_toml: text.into() }).await.expect_err("the spec is refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_trial_spec_of_under_1_kb_is_refused_and_nothing_is_stored() {
    let mut c = served().await;
    let text = million(10).to_toml();
    assert!(text.len() < 1024, "{} bytes", text.len());
    let status = refused(&mut c.client, &text).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(
            "grid: the sweep makes 1000000 trials (10 x 10 x 10 x 10 x 10 grid points x 10 seeds); this coordinator \
             accepts at most 10000 trials; split the sweep, or raise the limit with `allsweep serve --max-trials N`"
        ),
        "{}",
        status.message()
    );
    assert!(c.store.sweeps().await.unwrap().is_empty(), "no sweep stored");

    // The same axes cut down to two values each (64 trials) are a sweep like any other.
    let small = common::submit(&mut c.client, &million(2).to_toml()).await;
    assert_eq!((small.trials, small.created), (64, true));
    assert_eq!(c.store.sweeps().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_past_the_size_limit_is_refused_and_nothing_is_stored() {
    let mut c = served().await;
    let mut text = SyntheticSpec::new("padded").to_toml();
    text.push_str(&"# a comment line of padding\n".repeat(10_000));
    let status = refused(&mut c.client, &text).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let expected = format!(
        "spec: the spec is {} bytes; this coordinator accepts at most 262144 bytes; split the sweep, or raise the \
         limit with `allsweep serve --max-spec-bytes N`",
        text.len()
    );
    assert!(status.message().contains(&expected), "{}", status.message());
    assert!(c.store.sweeps().await.unwrap().is_empty(), "no sweep stored");
}

/// `allsweep serve --max-trials --max-axes --max-spec-bytes` set the limits a client meets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_are_set_on_allsweep_serve() {
    let cluster =
        common::Cluster::sqlite("limits", &["--max-trials", "4", "--max-axes", "1", "--max-spec-bytes", "2000"]);
    let mut client = cluster.client().await;
    let spec = |seeds: u64| SyntheticSpec::new("limited").seeds(0..seeds).grid("loss.gamma", "[0.1, 0.3]");
    let cases = [
        (
            spec(3).to_toml(),
            "the sweep makes 6 trials (2 grid points x 3 seeds); this coordinator accepts at most 4 trials",
        ),
        (
            spec(1).grid("loss.omega", "[6, 8]").to_toml(),
            "the grid has 2 axes; this coordinator accepts at most 1 axes",
        ),
        (spec(1).to_toml() + &"#".repeat(2000), "this coordinator accepts at most 2000 bytes"),
    ];
    for (text, expected) in cases {
        let status = refused(&mut client, &text).await;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(expected), "expected {expected:?} in {}", status.message());
    }
    assert!(cluster.store().await.sweeps().await.unwrap().is_empty(), "no sweep stored");
    assert_eq!(common::submit(&mut client, &spec(2).to_toml()).await.trials, 4, "at the limit");
}
