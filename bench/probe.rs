//! Measurements wrk cannot make (run by bench/run.sh):
//!
//! ```text
//! bench-probe rate URL HOST CA PATH=BODY[,PATH=BODY...] RATE SECONDS
//!                                                  fixed-rate (open-loop) load, bodies in turn
//! bench-probe ready ADMIN_ADDR RUNS -- CMD ARGS... cold start: spawn → /readyz 200, per run
//! bench-probe reload ADMIN_ADDR POLICY_FILE RUNS   policy edit → new digest in /readyz, per run
//! ```
//!
//! `rate` is the wrk2-style measurement wrk 4 lacks: requests are sent on a schedule whatever
//! the server's speed (each in its own task over a pool of kept-alive HTTP/1.1 connections), so
//! a slow answer cannot hold back the next request and hide its own delay (coordinated
//! omission). Latency is measured from the moment each request is dispatched. tokio's timer has
//! 1 ms granularity, so at high rates requests leave in small bursts each millisecond, which
//! is slightly harsher than a perfectly even schedule.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("bench-probe: {message}");
    std::process::exit(1)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One plain HTTP/1.1 GET: status and body, or `None` when nothing answers yet.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn digest(admin: SocketAddr) -> Option<String> {
    let (_, body) = http_get(admin, "/readyz")?;
    // Chunked or not, the JSON object is the part between the first `{` and the last `}`.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["policy"]["digest"].as_str().map(str::to_owned)
}

fn report(label: &str, samples_us: &mut [u64]) {
    samples_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{label}: runs={} min={:.2}ms median={:.2}ms max={:.2}ms",
        samples_us.len(),
        ms(*samples_us.first().unwrap_or(&0)),
        ms(percentile(samples_us, 50.0)),
        ms(*samples_us.last().unwrap_or(&0)),
    );
}

fn ready(admin: SocketAddr, runs: usize, command: &[String]) {
    let Some((program, args)) = command.split_first() else {
        fail("ready needs a command after --")
    };
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot start {program}: {e}")));
        loop {
            if matches!(http_get(admin, "/readyz"), Some((200, _))) {
                samples.push(started.elapsed().as_micros() as u64);
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                fail("server never became ready");
            }
            if let Ok(Some(status)) = child.try_wait() {
                fail(format!("server exited before ready: {status}"));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Let the port be released before the next run.
        std::thread::sleep(Duration::from_millis(100));
    }
    report("cold start to /readyz 200", &mut samples);
}

fn reload(admin: SocketAddr, policy_file: &str, runs: usize) {
    let original = std::fs::read_to_string(policy_file)
        .unwrap_or_else(|e| fail(format!("{policy_file}: {e}")));
    let mut samples = Vec::new();
    for run in 0..runs {
        let before = digest(admin).unwrap_or_else(|| fail("no digest in /readyz"));
        // A real edit of the ConfigMap's content: a changed comment changes the digest and makes
        // the reloader read, parse, validate and swap the whole set.
        let edited = format!("{original}\n# bench edit {run}\n");
        let started = Instant::now();
        std::fs::write(policy_file, edited).unwrap_or_else(|e| fail(e));
        loop {
            if digest(admin).is_some_and(|d| d != before) {
                samples.push(started.elapsed().as_micros() as u64);
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                fail("the digest never changed");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let _ = std::fs::write(policy_file, original);
    report("policy edit to new digest in /readyz", &mut samples);
}

async fn rate(url: &str, host: &str, ca: &str, bodies: &str, rate: u64, seconds: u64) {
    let pem = std::fs::read(ca).unwrap_or_else(|e| fail(format!("{ca}: {e}")));
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| fail(e));
    let port = parsed.port().unwrap_or(443);
    let requests: Vec<(String, Vec<u8>)> = bodies
        .split(',')
        .map(|pair| {
            let (path, file) = pair
                .split_once('=')
                .unwrap_or_else(|| fail(format!("{pair}: expected PATH=FILE")));
            (format!("https://{host}:{port}{path}"), bytes_of(file))
        })
        .collect();
    let addr: SocketAddr = format!("{}:{port}", parsed.host_str().unwrap_or("127.0.0.1"))
        .parse()
        .unwrap_or_else(|e| fail(e));
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| fail(e)))
        .resolve(host, addr)
        .pool_max_idle_per_host(256)
        .build()
        .unwrap_or_else(|e| fail(e));
    // Warm the pool so connection set-up is not measured.
    for (target, body) in requests.iter().cycle().take(16) {
        let _ = client
            .post(target)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
    }
    let samples = Arc::new(Mutex::new(Vec::with_capacity((rate * seconds) as usize)));
    let errors = Arc::new(Mutex::new(0u64));
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let total = rate * seconds;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(started + period * i as u32).await;
        let (target, body) = &requests[i as usize % requests.len()];
        let (client, target, body) = (client.clone(), target.clone(), body.clone());
        let (samples, errors) = (Arc::clone(&samples), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = client
                .post(&target)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = match outcome {
                Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            let elapsed = sent.elapsed().as_micros() as u64;
            if ok {
                samples
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(elapsed);
            } else {
                *errors.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "fixed rate {rate}/s for {seconds}s: sent={total} ok={} errors={} achieved={:.0}/s p50={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        samples.len(),
        errors.lock().map(|e| *e).unwrap_or(0),
        samples.len() as f64 / wall,
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(percentile(&samples, 99.9)),
        ms(*samples.last().unwrap_or(&0)),
    );
}

fn bytes_of(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| fail(format!("{path}: {e}")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        fail("usage: bench-probe rate URL HOST CA PATH=BODY[,...] RATE SECONDS | ready ADMIN_ADDR RUNS -- CMD... | reload ADMIN_ADDR POLICY_FILE RUNS")
    };
    let addr = |s: &String| -> SocketAddr { s.parse().unwrap_or_else(|e| fail(e)) };
    let number = |s: &String| -> u64 { s.parse().unwrap_or_else(|e| fail(e)) };
    match args.first().map(String::as_str) {
        Some("rate") if args.len() == 7 => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap_or_else(|e| fail(e));
            runtime.block_on(rate(
                &args[1],
                &args[2],
                &args[3],
                &args[4],
                number(&args[5]),
                number(&args[6]),
            ));
        }
        Some("ready") if args.len() >= 5 && args[3] == "--" => {
            ready(addr(&args[1]), number(&args[2]) as usize, &args[4..]);
        }
        Some("reload") if args.len() == 4 => {
            reload(addr(&args[1]), &args[2], number(&args[3]) as usize);
        }
        _ => usage(),
    }
}
