//! Runs schemathesis (PyPI) against the running server with its own OpenAPI document:
//! generated requests (valid and invalid) must never produce a 5xx, and responses must
//! use the documented content types. Skips cleanly when schemathesis is not installed
//! locally; `.ci/install-deps` installs it for CI.

mod common;

use std::process::Command;

fn schemathesis() -> Option<String> {
    for b in ["schemathesis", "st"] {
        if Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(b.to_string());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_holds_against_the_running_server() {
    let Some(bin) = schemathesis() else {
        eprintln!(
            "SKIP: schemathesis not installed (pip install schemathesis; .ci/install-deps does)"
        );
        return;
    };
    // A config token: tokens from the config cannot be revoked through the API, so
    // fuzzing `DELETE /api/v1/tokens/{name}` cannot lock the run out.
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "sc_schemathesis_admin_token_0123456789";
    let r = common::secret_file(dir.path(), "st-token", token);
    let sc = common::start_in(
        dir,
        &format!(
            "[[tokens]]\nname = \"schemathesis\"\nrole = \"admin\"\npermissions = [\"page_user\", \"approve_remediation\"]\ntoken = \"{r}\"\n"
        ),
        |_| {},
    )
    .await;
    let schema = sc.url("/api/openapi.json");
    let admin = token.to_string();
    let report = sc.dir.path().join("st-report");
    let workdir = sc.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "run",
                &schema,
                "--checks",
                "not_a_server_error,content_type_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "8",
                "--max-time",
                "15",
                "--workers",
                "2",
                "--seed",
                "1",
                "--suppress-health-check",
                "filter_too_much",
                "--request-timeout",
                "10",
                "--exclude-path",
                "/api/openapi.json",
                "--report-dir",
            ])
            .arg(&report)
            .args(["-H", &format!("Authorization: Bearer {admin}")])
            .env("NO_COLOR", "1")
            // schemathesis keeps a cache in its working directory; keep it out of the repo.
            .current_dir(&workdir)
            .output()
    })
    .await
    .expect("join")
    .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
}
