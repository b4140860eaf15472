//! `synod web`: a live page of the cluster running in this directory, the
//! explainer's worked examples played step by step (`/learn`), and, with
//! `--replay DIR`, a finished chaos run to scrub ([`replay`]).
//!
//! One actix-web server on loopback (any other address only when asked, with
//! a warning), its assets embedded. Every request must name the server's own
//! address in its `Host` header (so a page of another site cannot reach it
//! through DNS rebinding); the cluster's state and its message events (keys
//! and values) need the per-run token the URL carries, and so does every
//! action, which a request from another origin is also refused (403). Actions go through the same
//! launcher calls as the CLI. A watcher polls the cluster every 250 ms and
//! turns what changed, and the messages each node's tap sampled, into
//! server-sent events for every open page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::check::input::InputError;
use crate::client::ClientError;
use crate::cluster::rundir::{RunDir, RunDirError};
use crate::launcher::{self, LaunchError};
use crate::net::NetFaults;
use crate::paxos::NodeId;

pub mod replay;

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const REPLAY: &str = include_str!("assets/replay.html");
const REPLAY_JS: &str = include_str!("assets/replay.js");
const LEARN: &str = include_str!("assets/learn.html");
const LEARN_JS: &str = include_str!("assets/learn.js");

/// What `synod web` serves.
pub struct WebOptions {
    /// The cluster's run directory.
    pub dir: RunDir,
    /// Where to listen.
    pub addr: SocketAddr,
    /// The secret every action must carry (16 random bytes, hex).
    pub token: String,
    /// Stop on Ctrl-C by itself (`synod web`); `up --web` stops with `up`.
    pub own_signals: bool,
}

impl WebOptions {
    /// Serve `dir` at `addr` with a fresh token.
    pub fn new(dir: RunDir, addr: SocketAddr) -> WebOptions {
        let mut raw = [0u8; 16];
        crate::rng::os_fill(&mut raw);
        WebOptions {
            dir,
            addr,
            token: raw.iter().map(|b| format!("{b:02x}")).collect(),
            own_signals: true,
        }
    }

    /// The page's address, with the token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// A warning for an address other machines may reach, if it is one.
    pub fn exposed(&self) -> Option<String> {
        (!self.addr.ip().is_loopback()).then(|| {
            format!(
                "warning: serving on {}: anyone who reaches it can try; the cluster's state and actions need the token, which crosses the network in clear",
                self.addr
            )
        })
    }
}

/// The middleware that refuses (421) a request whose `Host` is not the
/// address `$bound` ([`host_ok`]), for both servers.
macro_rules! host_guard {
    ($bound:expr) => {
        move |req, srv| {
            use actix_web::dev::Service as _;
            let bound = $bound;
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            if host_ok(host, bound) {
                futures_util::future::Either::Left(srv.call(req))
            } else {
                let why = format!("this server answers only to the Host {bound}");
                let refused = error(actix_web::http::StatusCode::MISDIRECTED_REQUEST, why);
                futures_util::future::Either::Right(futures_util::future::ready(Ok(
                    req.into_response(refused)
                )))
            }
        }
    };
}

/// True if `host` (a request's `Host` header) names the address the server
/// is bound to: that address itself, `localhost` on loopback, or, bound to
/// every address, any IP address with its port. A name other than those is
/// a page of another site whose name was pointed at us (DNS rebinding).
fn host_ok(host: Option<&str>, bound: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    if host == bound.to_string() {
        return true;
    }
    if bound.ip().is_loopback() && host == format!("localhost:{}", bound.port()) {
        return true;
    }
    bound.ip().is_unspecified()
        && host
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.port() == bound.port())
}

/// Why the page was not served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address cannot be served on.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A replay's directory is not a finished chaos run's `--out`.
    #[error("{source}\n{} is not the --out directory of a finished `synod chaos` run", dir.display())]
    NotARun {
        /// The directory.
        dir: PathBuf,
        /// Why its verdict cannot be read.
        source: InputError,
    },
    /// A file of the run to replay does not read.
    #[error(transparent)]
    Run(#[from] InputError),
}

struct Web {
    dir: RunDir,
    token: String,
    events: broadcast::Sender<String>,
}

/// Serve the page until Ctrl-C (or, without `own_signals`, until the process
/// ends).
pub fn serve(o: WebOptions) -> Result<(), WebError> {
    let (events, _) = broadcast::channel(1024);
    let state = web::Data::new(Web {
        dir: o.dir,
        token: o.token,
        events,
    });
    actix_web::rt::System::new()
        .block_on(async move {
            actix_web::rt::spawn(watch(state.clone()));
            let bound = o.addr;
            let server = HttpServer::new(move || {
                App::new()
                    .wrap_fn(host_guard!(bound))
                    .app_data(state.clone())
                    .app_data(
                        web::JsonConfig::default()
                            .limit(64 * 1024)
                            .error_handler(|e, _| {
                                let msg = e.to_string();
                                actix_web::error::InternalError::from_response(
                                    e,
                                    HttpResponse::BadRequest()
                                        .json(serde_json::json!({ "error": msg })),
                                )
                                .into()
                            }),
                    )
                    .route(
                        "/",
                        web::get().to(|| async { asset(INDEX, "text/html; charset=utf-8") }),
                    )
                    .route(
                        "/app.js",
                        web::get().to(|| async { asset(APP, "text/javascript; charset=utf-8") }),
                    )
                    .configure(common)
                    .route("/api/status", web::get().to(status))
                    .route("/api/events", web::get().to(events_stream))
                    .route("/api/nodes/{id}/{action}", web::post().to(node_action))
                    .route("/api/members/add", web::post().to(member_add))
                    .route("/api/partition", web::post().to(partition))
                    .route("/api/heal", web::post().to(heal))
                    .route("/api/net", web::post().to(net))
                    .route("/api/put", web::post().to(put))
            })
            .workers(2)
            .bind(o.addr)?;
            if o.own_signals {
                server.run().await
            } else {
                server.disable_signals().run().await
            }
        })
        .map_err(|source| WebError::Serve {
            addr: o.addr,
            source,
        })
}

/// What every page's server has: the style and the worked examples.
fn common(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/style.css",
        web::get().to(|| async { asset(STYLE, "text/css; charset=utf-8") }),
    )
    .route(
        "/learn",
        web::get().to(|| async { asset(LEARN, "text/html; charset=utf-8") }),
    )
    .route(
        "/learn.js",
        web::get().to(|| async { asset(LEARN_JS, "text/javascript; charset=utf-8") }),
    )
    .route("/api/demo/{name}", web::get().to(demo));
}

/// Serve a finished chaos run's timeline (read-only) until Ctrl-C.
pub fn serve_replay(r: replay::Replay, addr: SocketAddr) -> Result<(), WebError> {
    let state = web::Data::new(r);
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .wrap_fn(host_guard!(addr))
                    .app_data(state.clone())
                    .configure(common)
                    .route(
                        "/",
                        web::get().to(|| async { asset(REPLAY, "text/html; charset=utf-8") }),
                    )
                    .route(
                        "/replay.js",
                        web::get()
                            .to(|| async { asset(REPLAY_JS, "text/javascript; charset=utf-8") }),
                    )
                    .route(
                        "/api/replay",
                        web::get().to(|r: web::Data<replay::Replay>| async move {
                            HttpResponse::Ok().json(r.summary())
                        }),
                    )
                    .route("/api/replay/ops", web::get().to(replay_ops))
            })
            .workers(2)
            .bind(addr)?
            .run()
            .await
        })
        .map_err(|source| WebError::Serve { addr, source })
}

#[derive(Deserialize)]
struct Window {
    from_ms: f64,
    to_ms: f64,
}

async fn replay_ops(r: web::Data<replay::Replay>, q: web::Query<Window>) -> HttpResponse {
    if !(q.from_ms.is_finite() && q.to_ms.is_finite() && q.from_ms <= q.to_ms) {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "from_ms and to_ms: numbers, from_ms <= to_ms",
        );
    }
    HttpResponse::Ok().json(r.window(q.from_ms, q.to_ms))
}

fn asset(body: &'static str, kind: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn error(status: actix_web::http::StatusCode, why: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": why.into() }))
}

/// True if the request carries the token: in the `X-Synod-Token` header, or
/// (for the event stream, which a browser opens without headers) as the
/// `token` query parameter.
fn has_token(req: &HttpRequest, w: &Web) -> bool {
    let header = req
        .headers()
        .get("X-Synod-Token")
        .and_then(|v| v.to_str().ok());
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned());
    let token = header.map(str::to_string).or(query).unwrap_or_default();
    crate::net::auth::same(token.as_bytes(), w.token.as_bytes())
}

/// Reads of the cluster's state need the token: the refusal, if any.
fn unreadable(req: &HttpRequest, w: &Web) -> Option<HttpResponse> {
    (!has_token(req, w)).then(|| {
        error(
            actix_web::http::StatusCode::FORBIDDEN,
            "reading the cluster needs the token in the page's URL",
        )
    })
}

/// Actions need the token and, if the browser says where it comes from, this
/// very origin: the refusal, if any.
fn refused(req: &HttpRequest, w: &Web) -> Option<HttpResponse> {
    let forbidden = |why: &str| Some(error(actix_web::http::StatusCode::FORBIDDEN, why));
    if !has_token(req, w) {
        return forbidden("this action needs the token in the page's URL");
    }
    if let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        let host = req.connection_info().host().to_string();
        if origin != format!("http://{host}") {
            return forbidden("requests from another origin are refused");
        }
    }
    None
}

#[derive(Deserialize)]
struct DemoQuery {
    lang: Option<String>,
    #[serde(rename = "break")]
    broken: Option<String>,
}

/// A worked example as the real roles play it: its lines, its messages (one
/// arrow each, with the line that tells it) and its people.
async fn demo(path: web::Path<String>, q: web::Query<DemoQuery>) -> HttpResponse {
    let bad = |why: String| error(actix_web::http::StatusCode::BAD_REQUEST, why);
    let lang = match q
        .lang
        .as_deref()
        .unwrap_or("en")
        .parse::<crate::demo::Lang>()
    {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    let broken = match q.broken.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => match b.parse::<crate::paxos::Rule>() {
            Ok(r) => Some(r),
            Err(e) => return bad(e.to_string()),
        },
    };
    let name = path.into_inner();
    let Some(story) = crate::demo::run(&name, crate::paxos::Rules::breaking(broken), lang) else {
        return bad(format!(
            "no demo {name:?}: {}",
            crate::demo::NAMES.join(", ")
        ));
    };
    HttpResponse::Ok().json(serde_json::json!({
        "name": name,
        "broken": broken.map(|r| r.to_string()),
        "suggested_break": crate::demo::suggested_break(&name).map(|r| r.to_string()),
        "lines": story.text.lines().collect::<Vec<_>>(),
        "steps": story.steps,
        "people": story.people,
        "chosen": story.chosen.iter().map(crate::paxos::Value::brief).collect::<Vec<_>>(),
    }))
}

/// The same JSON as `synod status --json`.
async fn status(req: HttpRequest, w: web::Data<Web>) -> HttpResponse {
    if let Some(r) = unreadable(&req, &w) {
        return r;
    }
    let dir = w.dir.clone();
    match web::block(move || launcher::status_json(&dir)).await {
        Ok(Ok(v)) => HttpResponse::Ok().json(v),
        Ok(Err(e)) => error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        ),
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ),
    }
}

/// Server-sent events: one JSON object per event.
async fn events_stream(req: HttpRequest, w: web::Data<Web>) -> HttpResponse {
    if let Some(r) = unreadable(&req, &w) {
        return r;
    }
    let rx = w.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(s) => {
                    let frame = bytes::Bytes::from(format!("data: {s}\n\n"));
                    return Some((Ok::<_, actix_web::Error>(frame), rx));
                }
                // A slow page skips what it missed; it never holds the cluster up.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream)
}

/// Every 250 ms: compare the cluster's status with the last and tell the
/// pages what changed (node states, leaders, chosen slots), and pass on the
/// messages each node's tap sampled since the last round.
async fn watch(w: web::Data<Web>) {
    let mut last: Option<serde_json::Value> = None;
    // Per node: its process id and the last tap event passed on.
    let mut seen: std::collections::BTreeMap<u64, (Option<u64>, u64)> = Default::default();
    loop {
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
        let dir = w.dir.clone();
        let Ok(Ok(now)) = web::block(move || launcher::status_json(&dir)).await else {
            continue;
        };
        if let Some(before) = &last {
            for ev in changes(before, &now) {
                let _ = w.events.send(ev.to_string());
            }
        }
        // A new process starts its tap from 1 again.
        for n in now["nodes"].as_array().into_iter().flatten() {
            let (Some(id), pid) = (n["id"].as_u64(), n["pid"].as_u64()) else {
                continue;
            };
            let e = seen.entry(id).or_insert((pid, 0));
            if e.0 != pid {
                *e = (pid, 0);
            }
        }
        let dir = w.dir.clone();
        let afters: Vec<(u64, u64)> = seen.iter().map(|(&id, &(_, a))| (id, a)).collect();
        let Ok(Ok(taps)) = web::block(
            move || -> Result<Vec<(u64, Vec<crate::net::MsgEvent>)>, RunDirError> {
                let cluster = dir.cluster()?;
                Ok(afters
                    .into_iter()
                    .filter_map(|(id, after)| {
                        let addr = cluster.node(id)?.addr;
                        let req = crate::net::Request::Messages { after };
                        match crate::client::query(addr, &cluster, &req, Duration::from_millis(200))
                        {
                            Ok(crate::net::Response::Messages(m)) => Some((id, m)),
                            _ => None,
                        }
                    })
                    .collect())
            },
        )
        .await
        else {
            last = Some(now);
            continue;
        };
        for (id, msgs) in taps {
            if let Some(m) = msgs.last() {
                if let Some(e) = seen.get_mut(&id) {
                    e.1 = m.seq;
                }
            }
            for m in msgs {
                let sent = m.at_us / 1000;
                let _ = w.events.send(
                    serde_json::json!({
                        "kind": "message",
                        "from": m.from,
                        "to": m.to,
                        "msg": m.kind,
                        "text": m.brief,
                        "dropped": m.dropped,
                        "dup": m.copies > 1,
                        "sent_ms": sent,
                        // Loopback takes microseconds: the diagram slants
                        // arrows by a fixed 40 ms so they can be seen.
                        "recv_ms": sent + 40,
                    })
                    .to_string(),
                );
            }
        }
        last = Some(now);
    }
}

/// The events between two status snapshots.
pub fn changes(before: &serde_json::Value, now: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let nodes = |v: &serde_json::Value| v["nodes"].as_array().cloned().unwrap_or_default();
    let (old, new) = (nodes(before), nodes(now));
    for n in &new {
        let Some(o) = old.iter().find(|o| o["id"] == n["id"]) else {
            continue;
        };
        if o["state"] != n["state"] {
            out.push(serde_json::json!({"kind": "node", "id": n["id"], "from": o["state"], "to": n["state"]}));
        }
        if n["role"] == "leader" && o["role"] != "leader" {
            out.push(
                serde_json::json!({"kind": "election", "leader": n["id"], "ballot": n["ballot"]}),
            );
        }
    }
    let top = |v: &[serde_json::Value]| v.iter().filter_map(|n| n["chosen"].as_u64()).max();
    if top(&new) != top(&old) {
        out.push(serde_json::json!({"kind": "chosen", "slot": top(&new)}));
    }
    out
}

/// Tell every open page what an action did: `kind` "fault" for what the
/// fault controls did, "op" for a client operation.
fn announce(w: &Web, kind: &str, text: String) {
    let _ = w
        .events
        .send(serde_json::json!({"kind": kind, "text": text}).to_string());
}

async fn node_action(
    req: HttpRequest,
    w: web::Data<Web>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let (id, action) = path.into_inner();
    let Ok(id) = id.parse::<NodeId>() else {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("{id:?} is not a node id"),
        );
    };
    let dir = w.dir.clone();
    let act = action.clone();
    let done = web::block(move || -> Result<String, LaunchError> {
        let cluster = dir.cluster()?;
        if cluster.node(id).is_none() {
            return Err(LaunchError::Usage(format!(
                "no node {id} in cluster {:?}",
                cluster.name
            )));
        }
        match act.as_str() {
            "kill" => launcher::kill(&dir, id).map(|pid| format!("killed node {id} (pid {pid})")),
            "restart" => launcher::restart(&dir, id, Duration::from_secs(10))
                .map(|pid| format!("node {id} serves again (pid {pid})")),
            "pause" => {
                launcher::pause(&dir, id, true).map(|pid| format!("paused node {id} (pid {pid})"))
            }
            "resume" => {
                launcher::pause(&dir, id, false).map(|pid| format!("resumed node {id} (pid {pid})"))
            }
            "promote" | "remove" => {
                let mut s = launcher::members::Session::open(&dir, false, Duration::from_secs(10))?;
                s.verbose = false;
                if act == "promote" {
                    s.promote(id)
                        .map(|()| format!("node {id} promoted to voter"))
                } else {
                    s.remove(id, false)
                        .map(|()| format!("node {id} removed from the configuration and stopped"))
                }
            }
            other => Err(LaunchError::Usage(format!(
                "{other:?}: kill, restart, pause, resume, promote or remove"
            ))),
        }
    })
    .await;
    reply(&w, done)
}

#[derive(Deserialize)]
struct MemberAdd {
    /// Where the new node listens (`host:port`).
    addr: String,
    /// Wait until it is in sync and promote it.
    #[serde(default)]
    promote: bool,
}

/// Add a node on `addr` as a learner (the launcher starts it), and promote
/// it when asked: `synod member add ADDR [--promote]`.
async fn member_add(
    req: HttpRequest,
    w: web::Data<Web>,
    body: web::Json<MemberAdd>,
) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let MemberAdd { addr, promote } = body.into_inner();
    if addr.parse::<std::net::SocketAddr>().is_err() {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("{addr:?} is not an address (host:port, e.g. 127.0.0.1:7106)"),
        );
    }
    let dir = w.dir.clone();
    let done = web::block(move || -> Result<String, LaunchError> {
        let mut s = launcher::members::Session::open(&dir, false, Duration::from_secs(30))?;
        s.verbose = false;
        let id = launcher::members::add(&mut s, &addr, None, promote)?;
        Ok(if promote {
            format!("node {id} added on {addr}, caught up and promoted")
        } else {
            format!("node {id} added on {addr} as a learner")
        })
    })
    .await;
    reply_as(&w, "member", done)
}

fn reply(
    w: &Web,
    done: Result<Result<String, LaunchError>, actix_web::error::BlockingError>,
) -> HttpResponse {
    reply_as(w, "fault", done)
}

fn reply_as(
    w: &Web,
    kind: &str,
    done: Result<Result<String, LaunchError>, actix_web::error::BlockingError>,
) -> HttpResponse {
    match done {
        Ok(Ok(message)) => {
            announce(w, kind, message.clone());
            HttpResponse::Ok().json(serde_json::json!({ "message": message }))
        }
        // The user's input, or a run directory that cannot be read: 400.
        Ok(Err(e @ (LaunchError::Usage(_) | LaunchError::RunDir(_)))) => {
            error(actix_web::http::StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e)) => error(actix_web::http::StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ),
    }
}

#[derive(Deserialize)]
struct Sides {
    sides: Vec<Vec<NodeId>>,
}

async fn partition(req: HttpRequest, w: web::Data<Web>, body: web::Json<Sides>) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let dir = w.dir.clone();
    let sides = body.into_inner().sides;
    reply(
        &w,
        web::block(move || launcher::partition(&dir, &sides)).await,
    )
}

async fn heal(req: HttpRequest, w: web::Data<Web>) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let dir = w.dir.clone();
    reply(
        &w,
        web::block(move || {
            let ids = dir.cluster()?.ids();
            launcher::change_faults(&dir, &ids, |_, f| *f = NetFaults::none())?;
            Ok("healed: every node reaches every other, no loss, no delay".to_string())
        })
        .await,
    )
}

#[derive(Deserialize)]
struct Net {
    loss: Option<f64>,
    dup: Option<f64>,
    delay: Option<(u64, u64)>,
}

async fn net(req: HttpRequest, w: web::Data<Web>, body: web::Json<Net>) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let n = body.into_inner();
    for p in [n.loss, n.dup].into_iter().flatten() {
        if !(0.0..=1.0).contains(&p) {
            return error(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("{p} is not a probability"),
            );
        }
    }
    if let Some((lo, hi)) = n.delay {
        if lo > hi || hi > NetFaults::MAX_DELAY_MS {
            return error(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!(
                    "delay {lo}..{hi}: MIN <= MAX <= {}",
                    NetFaults::MAX_DELAY_MS
                ),
            );
        }
    }
    let dir = w.dir.clone();
    reply(
        &w,
        web::block(move || {
            let ids = dir.cluster()?.ids();
            launcher::change_faults(&dir, &ids, |_, f| f.set_net(n.loss, n.dup, n.delay))?;
            Ok(format!(
                "network: loss {:?}, dup {:?}, delay {:?}",
                n.loss, n.dup, n.delay
            ))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct Put {
    key: String,
    value: String,
}

async fn put(req: HttpRequest, w: web::Data<Web>, body: web::Json<Put>) -> HttpResponse {
    if let Some(r) = refused(&req, &w) {
        return r;
    }
    let p = body.into_inner();
    let dir = w.dir.clone();
    let done = web::block(
        move || -> Result<Result<String, ClientError>, LaunchError> {
            let cluster = dir.cluster()?;
            let mut c = crate::client::Client::new(cluster);
            c.timeout = Duration::from_secs(3);
            Ok(c.execute(crate::kv::Op::Put {
                key: p.key.clone(),
                value: p.value,
            })
            .map(|_| format!("put {} committed", p.key)))
        },
    )
    .await;
    match done {
        // No quorum, no leader in time: the cluster cannot serve it now (503).
        Ok(Ok(Err(why))) => error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            why.to_string(),
        ),
        Ok(Ok(Ok(message))) => reply_as(&w, "op", Ok(Ok(message))),
        Ok(Err(e)) => reply(&w, Ok(Err(e))),
        Err(e) => reply(&w, Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_leader_and_a_killed_node_are_events() {
        let before = serde_json::json!({"nodes": [
            {"id": 1, "state": "up", "role": "leader", "ballot": "1.1", "chosen": 5},
            {"id": 2, "state": "up", "role": "follower", "ballot": "-", "chosen": 5}]});
        let now = serde_json::json!({"nodes": [
            {"id": 1, "state": "down", "role": null, "ballot": null, "chosen": null},
            {"id": 2, "state": "up", "role": "leader", "ballot": "2.2", "chosen": 7}]});
        let ev = changes(&before, &now);
        assert!(ev
            .iter()
            .any(|e| e["kind"] == "node" && e["id"] == 1 && e["to"] == "down"));
        assert!(ev
            .iter()
            .any(|e| e["kind"] == "election" && e["leader"] == 2));
        assert!(ev.iter().any(|e| e["kind"] == "chosen" && e["slot"] == 7));
    }
}
