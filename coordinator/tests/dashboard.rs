//! The dashboard as a person uses it, in a real browser: `allsweep serve --http` with a token
//! and real workers, headless Chromium driven over WebDriver (Debian's chromium and
//! chromium-driver, installed by `scripts/setup-web-tests.sh`). Without the token every page
//! is refused; after logging in, the sweep appears, a trial's epoch advances on screen without
//! a reload, the per-config table shows the final mean ± sd (the same as `allsweep report`),
//! the downloads are real files, and cancelling from the page cancels the sweep. Screenshots
//! are saved under `target/tmp/dashboard/` (and into `$ALLSWEEP_SCREENSHOTS` when set: the
//! README's pictures).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allsweep_coordinator::report::render::mean_sd_text;
use allsweep_coordinator::report::{self, groups, Cell, Metric, ReportOptions};
use allsweep_coordinator::store::SweepState;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::http::{get, request};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

const TOKEN: &str = "asw_dashboard_test_token_0123456789";
const LONG: Duration = Duration::from_secs(300);

/// A chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chromedriver (Debian's chromium-driver: scripts/setup-web-tests.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && get(&format!("{url}/status"), &[]).await.status == 200
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }

    async fn browser(&self, profile: &std::path::Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1100", format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::native().capabilities(caps).connect(&self.url).await.expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 250 ms until it gives a value, or panics naming `what`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn text(browser: &Client, css: &str) -> Option<String> {
    browser.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Saves a screenshot as a test artefact, and into `$ALLSWEEP_SCREENSHOTS` when set.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), &png).unwrap();
    if let Ok(out) = std::env::var("ALLSWEEP_SCREENSHOTS") {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(PathBuf::from(out).join(name), &png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_follows_a_sweep_live_in_chromium_and_cancels_another() {
    let cluster = Cluster::sqlite("dashboard", &["--http", "127.0.0.1:0", "--token", TOKEN]);
    let url = cluster.coordinator.dashboard.clone().unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    // Without the token: pages go to the login form, data is refused, probes answer.
    let page = get(&format!("{url}/"), &[("Accept", "text/html")]).await;
    assert_eq!((page.status, page.header("location")), (303, Some("/login?next=/")));
    for path in ["/", "/sweeps/sw-x", "/sweeps/sw-x/report.csv", "/trials/t-x", "/events", "/metrics"] {
        let refused = get(&format!("{url}{path}"), &[]).await;
        assert_eq!(refused.status, 401, "{path} without a token");
        let wrong = get(&format!("{url}{path}"), &[("Cookie", "allsweep_token=asw_wrong")]).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    assert_eq!(get(&format!("{url}/healthz"), &[]).await.text(), "ok\n");
    let ready = get(&format!("{url}/readyz"), &[]).await;
    assert!(ready.status == 200 && ready.text().starts_with("ready"), "{}", ready.text());
    let bad_id = get(&format!("{url}/sweeps/..%2Fetc"), &auth).await;
    assert!(bad_id.status == 400 && bad_id.text().starts_with("sweep id:"), "{}", bad_id.text());

    // A sweep of two losses x two seeds, six epochs each; its workers start once it is on screen.
    let mut client = allsweep_coordinator::client::user(&cluster.coordinator.address, Some(TOKEN)).await.unwrap();
    let spec = SyntheticSpec::new("watched")
        .seeds(0..2)
        .epochs(6)
        .images(24)
        .grid("loss", r#"[{kind = "dice"}, {kind = "focal"}]"#)
        .to_toml();
    let watched = submit(&mut client, &spec).await.sweep_id;
    let driver = Driver::start(cluster.dir.path()).await;
    let profile = cluster.dir.path().join("chromium-profile");
    let browser = driver.browser(&profile).await;

    // The login form, then the sweep on the first page.
    browser.goto(&format!("{url}/")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().starts_with("/login"));
    browser.find(Locator::Css("#token")).await.unwrap().send_keys("asw_not_a_token").await.unwrap();
    browser.find(Locator::Css("form[action='/login'] button")).await.unwrap().click().await.unwrap();
    let refusal = eventually("the login refusal", LONG, || text(&browser, "p.error")).await;
    assert!(refusal.contains("unknown"), "{refusal}");
    browser.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    browser.find(Locator::Css("form[action='/login'] button")).await.unwrap().click().await.unwrap();
    let row_css = format!("#sweep-{watched}");
    let row = eventually("the sweep on /", LONG, || text(&browser, &row_css)).await;
    assert!(row.contains("watched"), "{row}");

    // The sweep's page: a trial's epoch advances on screen while the page stays the same page.
    browser.goto(&format!("{url}/sweeps/{watched}")).await.unwrap();
    browser.execute("window.allsweepMarker = 'same page'; return null;", vec![]).await.unwrap();
    let trial = sweep(&mut client, &watched).await.trials[0].trial_id.clone();
    let epochs_css = format!("#trial-{trial} .epochs");
    // (Read again if the live stream swapped the fragment between finding and reading it.)
    let first = eventually("the trial's epochs on screen", LONG, || text(&browser, &epochs_css)).await;
    assert_eq!(first, "0/6", "nothing trained before the workers start");
    let token_arg = ["--token", TOKEN];
    let _w1 = cluster.worker("w1", &token_arg);
    let _w2 = cluster.worker("w2", &token_arg);
    let later = eventually("the trial's epoch to advance on screen", LONG, || async {
        let t = text(&browser, &epochs_css).await?;
        let done: u32 = t.split('/').next()?.parse().ok()?;
        (done > 0).then_some(t)
    })
    .await;
    let marker = browser.execute("return window.allsweepMarker || null;", vec![]).await.unwrap();
    assert_eq!(marker, serde_json::json!("same page"), "the page was not reloaded ({first} -> {later})");

    // Once every trial completed, the page says so and its table shows the report's mean ± sd.
    wait_for(&mut client, &watched, LONG, |s| s.state() != pb::SweepState::Active).await;
    let summary = eventually("the page to say finished", LONG, || async {
        let t = text(&browser, "#summary").await?;
        t.starts_with("finished").then_some(t)
    })
    .await;
    assert!(summary.contains("4 completed"), "{summary}");
    let store = cluster.store().await;
    let configs = groups::load(&store, std::slice::from_ref(&watched)).await.unwrap();
    let options = ReportOptions { metrics: vec![Metric::Jaccard], pivot: None, baseline: None };
    let expected = report::build("watched", &configs, &options).unwrap();
    let table = eventually("the per-config table", LONG, || text(&browser, "#report table")).await;
    assert_eq!(expected.rows.len(), 2, "two configs");
    for row in &expected.rows {
        let (Cell::Text(label), Cell::Stat(stat)) = (&row[0], &row[2]) else {
            panic!("a config and a statistic: {row:?}")
        };
        assert_eq!(stat.n, 2, "two seeds of {label}");
        let shown = mean_sd_text(stat.mean, stat.sd, Metric::Jaccard.digits());
        assert!(shown.contains('±'), "{shown}");
        let line =
            table.lines().find(|l| l.starts_with(label.as_str())).unwrap_or_else(|| panic!("{label} in {table}"));
        assert!(line.contains(&shown), "{label}: {shown} in {line:?}");
    }
    let marker = browser.execute("return window.allsweepMarker || null;", vec![]).await.unwrap();
    assert_eq!(marker, serde_json::json!("same page"), "still the same page");
    eventually("the ROC chart", LONG, || async { browser.find(Locator::Css("#roc canvas")).await.ok().map(|_| ()) })
        .await;
    screenshot(&browser, "dashboard-sweep.png").await;
    browser.goto(&format!("{url}/")).await.unwrap();
    let rows = eventually("both workers on /", LONG, || async {
        let rows = browser.find_all(Locator::Css("#workers tbody tr")).await.ok()?;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 2);
    screenshot(&browser, "dashboard-index.png").await;

    // The downloads are the report and figures.
    let csv = get(&format!("{url}/sweeps/{watched}/report.csv"), &auth).await;
    assert_eq!(csv.status, 200);
    assert!(csv.text().starts_with("config,n,"), "{}", csv.text());
    let json = get(&format!("{url}/sweeps/{watched}/report.json?baseline=loss.kind%3Ddice"), &auth).await;
    let parsed: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert!(parsed["columns"].to_string().contains("vs loss.kind=dice"), "{parsed}");
    let svg = get(&format!("{url}/sweeps/{watched}/curves.svg?metric=dice"), &auth).await;
    assert!(svg.status == 200 && svg.text().contains("<svg"), "{}", svg.status);
    let png = get(&format!("{url}/sweeps/{watched}/roc.png"), &auth).await;
    assert!(png.status == 200 && png.body.starts_with(b"\x89PNG"), "{}", png.status);
    let trial_page = get(&format!("{url}/trials/{trial}"), &auth).await;
    assert!(trial_page.text().contains("attempt 1 started on"), "the trial's history");

    // A form post from another site is refused, even with the token.
    let forged = request(
        "POST",
        &format!("{url}/sweeps/{watched}/cancel"),
        &[("Authorization", &bearer), ("Origin", "http://evil.example")],
        &[],
    )
    .await;
    assert_eq!(forged.status, 403);

    // A long sweep, cancelled from its page.
    let long = SyntheticSpec::new("cancelled").epochs(200).to_toml();
    let doomed = submit(&mut client, &long).await.sweep_id;
    browser.goto(&format!("{url}/sweeps/{doomed}")).await.unwrap();
    wait_for(&mut client, &doomed, LONG, |s| s.running > 0).await;
    browser.find(Locator::Css("#cancel")).await.unwrap().click().await.unwrap();
    browser.accept_alert().await.unwrap();
    let cancelled = eventually("the sweep cancelled in the database", LONG, || {
        let store = store.clone();
        let doomed = doomed.clone();
        async move { (store.sweep(&doomed).await.ok()??.state == SweepState::Cancelled).then_some(()) }
    })
    .await;
    let () = cancelled;
    let summary = eventually("the page to say cancelled", LONG, || async {
        let t = text(&browser, "#summary").await?;
        t.contains("cancelled").then_some(t)
    })
    .await;
    assert!(summary.starts_with("cancelled"), "{summary}");
    assert!(browser.find(Locator::Css("#cancel")).await.is_err(), "no cancel button on a cancelled sweep");
    browser.close().await.unwrap();
}
