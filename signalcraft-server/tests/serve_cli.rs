//! `signalcraft serve` as an operator runs it: no config → defaults, data dir, default
//! config next to it, admin token file (0600), URLs printed; SIGTERM → clean exit
//! within the shutdown deadline.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_without_config_bootstraps_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let mut url = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            url = Some(rest.trim().to_string());
        }
        let done = line.contains("Admin API token written to");
        banner.push(line);
        if done {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no URL printed: {banner:#?}"));
    let text = banner.join("\n");
    assert!(text.contains("/api/v2/alerts"), "{text}");
    assert!(text.contains("Wrote a commented default config"), "{text}");
    // Files: default config next to the data dir, token file 0600, store.
    let cfg = std::fs::read_to_string(dir.path().join("signalcraft.toml")).unwrap();
    assert!(cfg.starts_with("# SignalCraft configuration"));
    signalcraft_server::config::parse(&cfg).expect("the written default config is valid");
    let token_path = dir.path().join("signalcraft-data/admin-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert!(token.trim().starts_with("sc_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        dir.path()
            .join("signalcraft-data/signalcraft.redb")
            .exists()
    );
    // The server answers, and the token works.
    signalcraft_server::server::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        assert_eq!(
            c.get(format!("{url}/-/healthy"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let r = c
            .get(format!("{url}/api/v1/incidents"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    // SIGTERM: exits cleanly, well within the 10 s default deadline.
    let t = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    // A second start finds the admin token and writes no new one.
    let before = std::fs::read_to_string(&token_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_signalcraft"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening on"), "{first}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        !rest.iter().any(|l| l.contains("Admin API token written")),
        "{rest:?}"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&token_path).unwrap(), before);
}
