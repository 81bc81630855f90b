//! A real browser for the web UI's tests (STACK §13): Debian's `chromedriver` on a free port, in
//! its own process group (it starts Chromium; the whole group is killed on drop), driving a
//! headless Chromium with a fresh profile and no outside network. Every page visited can be
//! saved as a PNG under `target/ui-screenshots/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
    /// Screenshot file prefix (the test's name).
    name: String,
    /// Pages visited so far (each one is saved as a screenshot).
    visited: std::sync::atomic::AtomicUsize,
}

impl Browser {
    pub async fn start(name: &str) -> Browser {
        let mut cmd = tokio::process::Command::new("chromedriver");
        cmd.arg("--port=0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut driver = cmd
            .spawn()
            .expect("chromedriver (scripts/dev test installs chromium-driver)");
        let stdout = driver.stdout.take().expect("chromedriver stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("was started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver announced its port");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile =
            std::env::temp_dir().join(format!("pn-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", format!("--user-data-dir={}", profile.display()),
            ]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            profile,
            name: name.to_owned(),
            visited: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.visited().await;
    }

    /// Every page a test visits is saved: `<test>-page<n>.png`.
    async fn visited(&self) {
        let n = self
            .visited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.screenshot(&format!("page{n:02}")).await;
    }

    /// The page's text (what a reader sees).
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// The element, or a panic naming the page it was looked for on.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!(
                "{css} not found on {}: {e}\n{}",
                self.current_path().await,
                self.text().await
            ),
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks a submit button and waits until the next page has loaded (the old document is
    /// gone and the new one is complete).
    pub async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.find(css).await.click().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let stale = old.tag_name().await.is_err();
            let ready = self
                .client
                .execute("return document.readyState;", vec![])
                .await
                .ok()
                .is_some_and(|v| v == "complete");
            if stale && ready {
                self.visited().await;
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "clicking {css} did not load a page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A form field's current value (e.g. a token shown once in a read-only field).
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub async fn current_path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Saves the current page as `target/ui-screenshots/<test>-<label>.png`.
    pub async fn screenshot(&self, label: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = crate::workspace_root().join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{label}.png", self.name));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The accessibility smoke check of SPEC's UI: `lang`, an `<h1>`, a label for every field,
    /// text on every button.
    pub async fn accessible(&self) {
        let report: serde_json::Value = self
            .client
            .execute(
                "const problems = [];
                 if (!document.documentElement.lang) problems.push('html has no lang');
                 if (!document.querySelector('h1')) problems.push('no h1');
                 for (const f of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
                   if (!f.id || !document.querySelector(`label[for='${f.id}']`)) problems.push('unlabelled ' + (f.name || f.outerHTML));
                 }
                 for (const b of document.querySelectorAll('button')) {
                   if (!b.hidden && !b.textContent.trim()) problems.push('button without text');
                 }
                 return problems;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            report,
            json!([]),
            "accessibility on {}",
            self.current_path().await
        );
    }

    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_named_cookie(name)
            .await
            .ok()
            .map(|c| c.value().to_owned())
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(pid) = self.driver.id() {
            // chromedriver and the Chromium it started share chromedriver's own process group;
            // kill that group only when it really is chromedriver's (never a caller's group).
            let group = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(2)?.parse::<u32>().ok()
                });
            let target = if group == Some(pid) {
                format!("-{pid}")
            } else {
                pid.to_string()
            };
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &target])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
