//! `synod web` over plain HTTP (the browser tests are to come): the page and
//! its assets, the status API, the token and origin checks, an action that is
//! a real SIGKILL, and bad requests answered with 400.

mod support;

use std::net::TcpStream;

use support::{http, web, Env};

#[test]
fn the_page_the_api_and_the_token() {
    let env = Env::new("webapi", 3);
    env.up();
    let w = web(&env);
    // The event stream, opened first and read at the end.
    let mut events = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    std::io::Write::write_all(
        &mut events,
        format!(
            "GET /api/events?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            w.token, w.port
        )
        .as_bytes(),
    )
    .unwrap();
    events
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut got = String::new();
    let mut read = |got: &mut String| {
        let mut buf = [0u8; 65536];
        if let Ok(n) = std::io::Read::read(&mut events, &mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    // The watcher has seen the cluster once (it passes on messages after
    // its first look): what changes from here on is an event.
    assert!(env.wait_for(10.0, || {
        read(&mut got);
        got.contains(r#""kind":"message""#)
    }));

    let (code, page) = http(w.port, "GET", "/", &[], "");
    assert_eq!(code, 200);
    assert!(
        page.contains(r#"id="majority""#) && page.contains("/app.js"),
        "{page}"
    );
    let (code, js) = http(w.port, "GET", "/app.js", &[], "");
    assert_eq!(code, 200);
    assert!(js.contains("data-action"));
    // The page loads nothing from outside (an SVG namespace is a name, not a load).
    for outside in [r#"src="http"#, r#"href="http"#, "fetch(\"http", "url(http"] {
        assert!(
            !page.contains(outside) && !js.contains(outside),
            "{outside}"
        );
    }

    let with_token = [("X-Synod-Token", w.token.as_str())];
    let (code, st) = http(w.port, "GET", "/api/status", &with_token, "");
    assert_eq!(code, 200, "{st}");
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3, "{st}");
    // Reads of the cluster need the token too: its state, and its events
    // (which carry keys and values).
    for path in ["/api/status", "/api/events", "/api/events?token=nope"] {
        let (code, body) = http(w.port, "GET", path, &[], "");
        assert_eq!(code, 403, "{path}: {body}");
    }
    // A page of another site whose name points here (DNS rebinding) sends
    // its own name as Host: refused, token or not.
    for path in ["/", "/app.js", "/api/status"] {
        let (code, body) = support::http_host(w.port, "evil.example", "GET", path, &with_token);
        assert_eq!(code, 421, "{path}: {body}");
    }
    let (code, _) = support::http_host(w.port, &format!("localhost:{}", w.port), "GET", "/", &[]);
    assert_eq!(code, 200);

    // No token, a wrong token, another origin: 403, nothing done.
    let leader = env.leader(5.0);
    let kill = format!("/api/nodes/{leader}/kill");
    assert_eq!(http(w.port, "POST", &kill, &[], "").0, 403);
    assert_eq!(
        http(w.port, "POST", &kill, &[("X-Synod-Token", "nope")], "").0,
        403
    );
    let token = w.token.as_str();
    let evil = [("X-Synod-Token", token), ("Origin", "http://evil.example")];
    assert_eq!(http(w.port, "POST", &kill, &evil, "").0, 403);
    assert_eq!(env.leader(5.0), leader, "a refused request killed nothing");

    // Bad requests: 400 with the reason.
    let ok = [("X-Synod-Token", token)];
    let (code, why) = http(w.port, "POST", "/api/nodes/9/kill", &ok, "");
    assert_eq!(code, 400, "{why}");
    assert!(why.contains("no node 9"), "{why}");
    let (code, why) = http(w.port, "POST", "/api/partition", &ok, r#"{"sides": "1,2"}"#);
    assert_eq!(code, 400, "{why}");
    let (code, _) = http(w.port, "POST", "/api/nodes/1/explode", &ok, "");
    assert_eq!(code, 400);

    // A real SIGKILL; a new leader; a put through the page.
    let (code, why) = http(w.port, "POST", &kill, &ok, "");
    assert_eq!(code, 200, "{why}");
    let next = env.leader(5.0);
    assert_ne!(next, leader);
    let (code, why) = http(
        w.port,
        "POST",
        "/api/put",
        &ok,
        r#"{"key": "k", "value": "v"}"#,
    );
    assert_eq!(code, 200, "{why}");
    assert_eq!(env.ok(&["get", "k"]), "v\n");
    // Every kind of event this run caused came down the stream, one JSON
    // object per `data:` line.
    let want = [
        r#""kind":"fault""#,
        r#""kind":"op""#,
        r#""kind":"election""#,
        r#""kind":"node""#,
        r#""kind":"message""#,
    ];
    assert!(
        env.wait_for(10.0, || {
            read(&mut got);
            want.iter().all(|w| got.contains(w))
        }),
        "missing {:?} in {}",
        want.iter()
            .filter(|w| !got.contains(*w))
            .collect::<Vec<_>>(),
        got.lines()
            .filter(|l| !l.contains("\"message\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for line in got.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let _: serde_json::Value = serde_json::from_str(line).expect("one JSON object per event");
    }
    // The node that answered counted the put, and timed it.
    let (_, st) = http(
        w.port,
        "GET",
        "/api/status",
        &[("X-Synod-Token", token)],
        "",
    );
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let busiest = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| {
            Some((
                n["client_ops_per_s"].as_f64()?,
                n["client_p99_ms"].as_f64()?,
            ))
        })
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
    assert!(busiest.0 > 0.0 && busiest.1 > 0.0, "{st}");
    let (code, why) = http(
        w.port,
        "POST",
        &format!("/api/nodes/{leader}/restart"),
        &ok,
        "",
    );
    assert_eq!(code, 200, "{why}");
}

/// `up --web` serves the page beside a foreground cluster and stops with it;
/// a taken address or `--detach` is refused (exit 2) before any node starts.
#[test]
fn up_with_web_serves_the_page_until_ctrl_c() {
    let env = Env::new("upweb", 3);
    let file = env.file.to_string_lossy().into_owned();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = env.synod(&["up", &file, "--web", &addr]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot serve on"));
    let o = env.synod(&["up", &file, "--web", "--detach"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(env.pids().is_empty(), "no node started");
    drop(taken);

    let port = support::free_ports(1)[0];
    let mut up = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["up", &file, "--web", &format!("127.0.0.1:{port}")])
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start synod up");
    let mut out = std::io::BufReader::new(up.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("the live page:") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "up ended without printing the page's URL");
    }
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/?token=")),
        "{line}"
    );
    assert!(env.wait_for(10.0, || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let token = line.trim().rsplit("token=").next().unwrap().to_string();
    let (code, st) = http(port, "GET", "/api/status", &[("X-Synod-Token", &token)], "");
    assert_eq!(code, 200, "{st}");
    assert!(st.contains(r#""cluster":"upweb""#), "{st}");

    // Ctrl-C stops the nodes, the page with them, and up exits 0.
    let pids = env.pids();
    unsafe {
        libc::kill(up.id() as i32, libc::SIGINT);
    }
    let status = up.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    for pid in pids {
        assert!(env.wait_for(5.0, || unsafe { libc::kill(pid as i32, 0) } != 0));
    }
}

#[test]
fn the_page_adds_promotes_and_removes_members() {
    let env = Env::new("webmembers", 3);
    env.up();
    let w = web(&env);
    let ok = [("X-Synod-Token", w.token.as_str())];
    let config = || {
        let (code, st) = http(w.port, "GET", "/api/status", &ok, "");
        assert_eq!(code, 200, "{st}");
        serde_json::from_str::<serde_json::Value>(&st).unwrap()["config"].clone()
    };
    assert_eq!(config()["voters"], serde_json::json!([1, 2, 3]));
    let (code, why) = http(
        w.port,
        "POST",
        "/api/members/add",
        &ok,
        r#"{"addr": "nowhere"}"#,
    );
    assert_eq!(code, 400, "{why}");
    let addr = format!("127.0.0.1:{}", synod::harness::free_ports(1)[0]);
    let body = format!(r#"{{"addr": "{addr}", "promote": true}}"#);
    let (code, why) = http(w.port, "POST", "/api/members/add", &ok, &body);
    assert_eq!(code, 200, "{why}");
    assert!(why.contains("node 4 added"), "{why}");
    assert!(env.wait_for(10.0, || config()["voters"]
        == serde_json::json!([1, 2, 3, 4])));
    let (code, why) = http(w.port, "POST", "/api/nodes/4/remove", &ok, "");
    assert_eq!(code, 200, "{why}");
    assert!(env.wait_for(10.0, || config()["voters"] == serde_json::json!([1, 2, 3])));
    // Only a learner is promoted: 409 with the reason.
    let (code, why) = http(w.port, "POST", "/api/nodes/1/promote", &ok, "");
    assert_eq!(code, 409, "{why}");
    assert!(why.contains("only a learner is promoted"), "{why}");
}
