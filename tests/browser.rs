//! The page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver by fantoccini, against a real
//! five-node cluster. Skipped, with the install command, where Chromium is
//! missing; required when SYNOD_REQUIRE_TOOLS=1, as `.ci/run` sets after
//! installing it.
//!
//! Set SYNOD_SCREENSHOT=FILE.png to keep a picture of the page (one node
//! killed, a new leader, Accept and Accepted arrows): the README's image.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{free_ports, web, Env};

/// One browser test at a time: each runs a cluster and a Chromium, and two
/// cores do not hold three of each with room to spare.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// True if Chromium and its driver are here; otherwise the test says it is
/// skipped (or fails, where they are required).
fn installed(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("SYNOD_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "{test}: Chromium is required here but {CHROMIUM} or {DRIVER} is missing ({INSTALL})"
    );
    eprintln!("skipped: {test}: Chromium not installed ({INSTALL})");
    false
}

/// chromedriver on a free port, with a profile of its own; killed (by pid)
/// when dropped.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    /// Kill the browser chromedriver started (a test that fails never closes
    /// its session) and then chromedriver: only processes this test started.
    fn drop(&mut self) {
        for pid in descendants(self.child.id()) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process below `root`, from each process's parent in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (name) state ppid ...": the name may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parent.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(child, _) in parent.iter().filter(|(_, pp)| *pp == p) {
            out.push(child);
            todo.push(child);
        }
    }
    out
}

fn driver() -> Driver {
    let port = free_ports(1)[0];
    let child = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver {
        child,
        port,
        profile: tempfile::tempdir().expect("tempdir"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

/// What each browser test starts with: its turn (the other browser tests
/// wait), a cluster of `n` nodes (up, unless `up` is false), and chromedriver.
/// Fields drop in order: the driver and its browser, the cluster, the turn.
struct Rig {
    driver: Driver,
    env: Env,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// A rig for `test`, or `None` (the test skipped) without Chromium.
fn rig(test: &str, name: &str, n: usize, up: bool) -> Option<Rig> {
    if !installed(test) {
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new(name, n);
    if up {
        env.up();
    }
    Some(Rig {
        driver: driver(),
        env,
        _turn: turn,
    })
}

async fn browser(d: &Driver) -> Client {
    let profile = format!("--user-data-dir={}", d.profile.path().display());
    // Without the background-networking flags Chromium keeps calling out to
    // hosts this closed network refuses.
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-breakpad",
                     "--disable-crash-reporter", "--window-size=1280,1300",
                     profile],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session")
}

/// Chrome's console log since the last read (chromedriver's `se/log`).
#[derive(Debug)]
struct ConsoleLog;

impl fantoccini::wd::WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// Keep a picture of the page at the path in `var`, if it is set.
async fn screenshot_if(c: &Client, var: &str) {
    if let Ok(path) = std::env::var(var) {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("write the screenshot");
    }
}

/// The console's errors since the last read, as text.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(ConsoleLog).await.expect("the console log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Run `js` (a function body) until it returns something truthy, for up to
/// `secs`; that value.
async fn until(c: &Client, secs: f64, what: &str, js: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let v = c.execute(js, vec![]).await.expect("run a script");
        let truthy =
            !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
        if truthy {
            return v;
        }
        if Instant::now() >= deadline {
            let page = c
                .execute(
                    "return document.querySelector('#majority').textContent + ' | ' + \
                     [...document.querySelectorAll('.card')].map(e => `${e.dataset.nodeId}:${e.dataset.state}:${e.dataset.role}`).join(' ') + \
                     ' | ' + document.querySelector('#events').textContent.slice(0, 600)",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!("not within {secs} s: {what}\npage: {page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.expect("the input");
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

/// The one node the page shows as an up leader (its id), if exactly one.
const LEADER: &str =
    "const l = document.querySelectorAll('.card[data-role=\"leader\"][data-state=\"up\"]'); \
                      return l.length === 1 ? Number(l[0].dataset.nodeId) : null;";
const GREEN: &str = "return document.querySelector('#majority').dataset.ok === 'true';";
const RED: &str = "return document.querySelector('#majority').dataset.ok === 'false';";

/// Put through the page's box; the answer the page shows.
async fn put(c: &Client, key: &str, value: &str) -> String {
    c.execute(
        "document.querySelector('#put-result').textContent = ''",
        vec![],
    )
    .await
    .unwrap();
    type_into(c, "#key", key).await;
    type_into(c, "#value", value).await;
    click(c, "button[data-action=\"put\"]").await;
    let got = until(
        c,
        20.0,
        "the put answered",
        "return document.querySelector('#put-result').textContent",
    )
    .await;
    got.as_str().unwrap_or_default().to_string()
}

/// Five cards and one leader; kill the leader on the page and see the next
/// one; kill two more and see the majority line turn red and a put fail for
/// want of a quorum; restart them and see it recover; Accept and Accepted
/// arrows after a put; and no error in the browser's console.
#[tokio::test(flavor = "current_thread")]
async fn the_page_in_chromium_shows_a_majority_surviving_kills() {
    let Some(rig) = rig(
        "the_page_in_chromium_shows_a_majority_surviving_kills",
        "browser",
        5,
        true,
    ) else {
        return;
    };
    let env = &rig.env;
    let w = web(env);
    let c = browser(&rig.driver).await;
    c.goto(&format!("http://127.0.0.1:{}/?token={}", w.port, w.token))
        .await
        .expect("open the page");

    until(
        &c,
        10.0,
        "five cards",
        "return document.querySelectorAll('.card').length === 5",
    )
    .await;
    let first = until(&c, 10.0, "one leader", LEADER).await;
    until(&c, 5.0, "the majority line green", GREEN).await;
    let text = c
        .find(Locator::Id("majority"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("5 of 5 up; a majority needs 3"), "{text}");

    // Kill the leader from the page: a real SIGKILL, then a new leader shown.
    let clicked = Instant::now();
    click(
        &c,
        &format!(".card[data-node-id=\"{first}\"] button[data-action=\"kill\"]"),
    )
    .await;
    // The cluster's own view (status, as the CLI reads it) and the page's,
    // side by side: the page may lag by the watcher's poll and one fetch.
    let (mut elected, mut shown) = (None, None);
    let page_js = format!(
        "const l = document.querySelectorAll('.card[data-role=\"leader\"][data-state=\"up\"]'); \
         return l.length === 1 && l[0].dataset.nodeId !== '{first}' ? Number(l[0].dataset.nodeId) : null;"
    );
    let mut next = Value::Null;
    while shown.is_none() || elected.is_none() {
        assert!(
            clicked.elapsed() < Duration::from_secs(30),
            "no new leader within 30 s (cluster: {elected:?}, page: {shown:?})"
        );
        if elected.is_none() {
            let st = env.status();
            if st["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["role"] == "leader" && n["id"] != first)
            {
                elected = Some(clicked.elapsed());
            }
        }
        if shown.is_none() {
            let v = c.execute(&page_js, vec![]).await.unwrap();
            if !v.is_null() {
                shown = Some(clicked.elapsed());
                next = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "kill clicked: new leader in status after {:.2} s, on the page after {:.2} s",
        elected.unwrap().as_secs_f64(),
        shown.unwrap().as_secs_f64()
    );
    until(
        &c,
        5.0,
        "node down on its card",
        &format!(
        "return document.querySelector('.card[data-node-id=\"{first}\"]').dataset.state === 'down'"
    ),
    )
    .await;
    until(&c, 5.0, "still green with 4 of 5", GREEN).await;

    // A put through the page: Accept and Accepted arrows in the diagram.
    let got = put(&c, "city", "Zhengzhou").await;
    assert!(got.contains("committed"), "{got}");
    until(
        &c,
        10.0,
        "Accept and Accepted arrows",
        "return document.querySelector('#diagram .msg[data-msg-kind=\"Accept\"]') !== null && \
         document.querySelector('#diagram .msg[data-msg-kind=\"Accepted\"]') !== null",
    )
    .await;
    screenshot_if(&c, "SYNOD_SCREENSHOT").await;
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // Two more down: no majority, the line red, a put refused for it.
    let others: Vec<u64> = (1..=5u64)
        .filter(|&i| json!(i) != first && json!(i) != next)
        .take(2)
        .collect();
    for id in &others {
        click(
            &c,
            &format!(".card[data-node-id=\"{id}\"] button[data-action=\"kill\"]"),
        )
        .await;
    }
    until(&c, 10.0, "the majority line red", RED).await;
    let text = c
        .find(Locator::Id("majority"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("2 of 5 up") && text.contains("cannot commit"),
        "{text}"
    );
    let got = put(&c, "city", "Beijing").await;
    assert!(got.contains("no quorum"), "{got}");
    // The refused put is a failed request in the console, and nothing else.
    let errors = console_errors(&c).await;
    assert!(
        errors.iter().all(|e| e.contains("/api/put")),
        "console errors: {errors:?}"
    );

    // Restart the three: green again, one leader, and writes commit.
    for id in others.iter().copied().chain([first.as_u64().unwrap()]) {
        click(
            &c,
            &format!(".card[data-node-id=\"{id}\"] button[data-action=\"restart\"]"),
        )
        .await;
    }
    until(
        &c,
        30.0,
        "five up again",
        "return document.querySelectorAll('.card[data-state=\"up\"]').length === 5",
    )
    .await;
    until(&c, 10.0, "green again", GREEN).await;
    until(&c, 10.0, "a leader again", LEADER).await;
    let got = put(&c, "city", "Luoyang").await;
    assert!(got.contains("committed"), "{got}");
    assert_eq!(env.ok(&["get", "city"]), "Luoyang\n");

    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // The console check is not blind: an error the page logs is seen.
    c.execute("console.error('synod probe')", vec![])
        .await
        .unwrap();
    let errors = console_errors(&c).await;
    assert!(
        errors.iter().any(|e| e.contains("synod probe")),
        "{errors:?}"
    );
    c.close().await.expect("close the browser");
}

/// The worked examples play step by step: every message the story delivered
/// is an arrow, the outcome is the one the roles computed (1+1=3; with the
/// promise rule off, two values), in English and in Chinese.
#[tokio::test(flavor = "current_thread")]
async fn the_worked_examples_play_step_by_step_in_chromium() {
    let Some(rig) = rig(
        "the_worked_examples_play_step_by_step_in_chromium",
        "learn",
        3,
        true,
    ) else {
        return;
    };
    let w = web(&rig.env);
    let c = browser(&rig.driver).await;
    let open = |q: &str| format!("http://127.0.0.1:{}/learn?{q}", w.port);
    c.goto(&open("demo=three-users"))
        .await
        .expect("open /learn");
    let steps = until(
        &c,
        10.0,
        "the story loaded",
        "const t = document.querySelector('#counter').textContent; return t.startsWith('step 0 of') ? Number(t.split(' ').pop()) : null",
    )
    .await
    .as_u64()
    .unwrap();
    assert!(steps > 12, "{steps} steps");
    for _ in 0..steps {
        click(&c, "button[data-action=\"next\"]").await;
    }
    let arrows = until(
        &c,
        5.0,
        "every arrow drawn",
        "return document.querySelectorAll('#diagram .msg').length",
    )
    .await;
    let chosen = until(
        &c,
        5.0,
        "chosen markers",
        "return document.querySelectorAll('#diagram circle.chosen').length",
    )
    .await;
    assert_eq!(
        arrows.as_u64().unwrap() + chosen.as_u64().unwrap(),
        steps,
        "one mark per step"
    );
    let outcome = until(
        &c,
        5.0,
        "the outcome",
        "return document.querySelector('#outcome').textContent",
    )
    .await;
    assert_eq!(outcome, json!("chosen: \"1+1=3\""));
    until(
        &c,
        5.0,
        "Prepare and Nack arrows",
        "return document.querySelector('#diagram .msg[data-msg-kind=\"Prepare\"][data-from=\"1\"]') !== null && \
         document.querySelector('#diagram .msg[data-msg-kind=\"Nack\"]') !== null",
    )
    .await;
    screenshot_if(&c, "SYNOD_SCREENSHOT_LEARN").await;

    // The promise rule off: User1's old ballot is chosen too.
    c.goto(&open("demo=three-users&break=promise"))
        .await
        .unwrap();
    until(
        &c,
        10.0,
        "loaded",
        "return document.querySelector('#counter').textContent.startsWith('step 0')",
    )
    .await;
    c.execute("for (let i = 0; i < 500; i++) document.querySelector('button[data-action=\"next\"]').click()", vec![])
        .await
        .unwrap();
    let outcome = until(
        &c,
        5.0,
        "a broken outcome",
        "const o = document.querySelector('#outcome'); return o.dataset.ok === 'false' && o.textContent",
    )
    .await;
    assert!(
        outcome.as_str().unwrap().contains("AGREEMENT BROKEN"),
        "{outcome}"
    );

    // In Chinese: the explainer's names and words.
    c.goto(&open("demo=late-joiner&lang=zh")).await.unwrap();
    let lanes = until(
        &c,
        10.0,
        "Chinese lanes",
        "return [...document.querySelectorAll('#diagram .lane-label')].map(t => t.textContent).join(' ')",
    )
    .await;
    assert_eq!(lanes, json!("张三 李四 王五 赵六 孙七"));
    c.execute("for (let i = 0; i < 500; i++) document.querySelector('button[data-action=\"next\"]').click()", vec![])
        .await
        .unwrap();
    let outcome = until(
        &c,
        5.0,
        "the outcome",
        "return document.querySelector('#outcome').textContent",
    )
    .await;
    assert_eq!(outcome, json!("选定: \"郑州\""));
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    c.close().await.unwrap();
}

/// `web --replay` scrubs a finished chaos run: fault bars on the timeline,
/// the operations around the chosen time, "none" for violations.
#[tokio::test(flavor = "current_thread")]
async fn a_chaos_run_replays_in_chromium() {
    let Some(rig) = rig("a_chaos_run_replays_in_chromium", "replay", 3, false) else {
        return;
    };
    let env = &rig.env;
    let out = env.path("out");
    let file = env.file.to_string_lossy().into_owned();
    env.ok(&[
        "chaos",
        &file,
        "--duration",
        "5s",
        "--seed",
        "2",
        "--faults",
        "kill,pause",
        "--out",
        out.to_str().unwrap(),
    ]);
    let w = support::web_with(env, &["--replay", out.to_str().unwrap()]);
    let c = browser(&rig.driver).await;
    c.goto(&format!("http://127.0.0.1:{}/", w.port))
        .await
        .expect("open the replay");
    let verdict = until(
        &c,
        10.0,
        "the verdict",
        "const v = document.querySelector('#verdict'); return v.dataset.ok === 'true' && v.textContent.startsWith('verdict OK') && v.textContent",
    )
    .await;
    eprintln!("{verdict}");
    until(
        &c,
        5.0,
        "fault bars",
        "return document.querySelectorAll('#timeline .fault-bar[data-fault=\"pause\"]').length > 0",
    )
    .await;
    until(
        &c,
        5.0,
        "violations: none",
        "return document.querySelector('#violations').textContent.startsWith('none')",
    )
    .await;
    // Scrub to 2.5 s: the operations around it, acknowledged ones among them.
    c.execute(
        "const s = document.querySelector('#scrub'); s.value = 2500; s.dispatchEvent(new Event('input'));",
        vec![],
    )
    .await
    .unwrap();
    until(
        &c,
        5.0,
        "the time shown",
        "return document.querySelector('#at').textContent === 'at 2.5 s'",
    )
    .await;
    until(
        &c,
        5.0,
        "operations drawn",
        "return document.querySelectorAll('#ops rect.op[data-status=\"ok\"]').length > 0",
    )
    .await;
    // The widest bar: clients' operations follow one another, so its middle
    // is its own.
    let id = c
        .execute(
            "return [...document.querySelectorAll('#ops rect.op')].sort((a, b) => b.width.baseVal.value - a.width.baseVal.value)[0].dataset.id",
            vec![],
        )
        .await
        .unwrap();
    click(
        &c,
        &format!("#ops rect.op[data-id=\"{}\"]", id.as_str().unwrap()),
    )
    .await;
    let detail = until(
        &c,
        5.0,
        "an operation's detail",
        "return document.querySelector('#op-detail').textContent",
    )
    .await;
    assert!(detail.as_str().unwrap().starts_with('#'), "{detail}");
    screenshot_if(&c, "SYNOD_SCREENSHOT_REPLAY").await;
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    c.close().await.unwrap();
}
