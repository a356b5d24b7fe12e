//! The dashboard, end to end in a real headless Chromium: `baton master` and a `baton worker`
//! on the real RabbitMQ and Redis (the test's own queue and key prefixes), a workflow posted
//! through the API, then in the browser: the token prompt, the workflows page's run dialog
//! (an invalid JSON input is refused inline), the execution page's graph changing live (a
//! signal-mode wait shown waiting, then signalled from its node panel, then every node of the
//! taken path green and the other branch skipped), a node's side panel showing its output, the
//! executions list, and a second run cancelled from its page.
//!
//! The browser is `/usr/bin/chromium` driven by `/usr/bin/chromedriver` (WebDriver, through
//! `fantoccini`); `BATON_TEST_CHROMIUM` / `BATON_TEST_CHROMEDRIVER` name other binaries. When
//! they are missing the test installs them with `scripts/browser` (which `scripts/test` also
//! runs) instead of skipping. Screenshots of the execution page are left in the test crate's
//! scratch directory (`CARGO_TARGET_TMPDIR`), and on failure one of the page as it was.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::distributed::{BOUND, Cluster, free_port, http_get_status};
use common::workspace;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The master's only API token: the dashboard must ask for it.
const TOKEN: &str = "dashboard-test-token";

const WORKFLOW_ID: &str = "hello-dashboard";

/// A small version of examples/01-hello.json: a conditional picks one of two branches, and the
/// taken one waits for an `approve` signal, so the page is open while the graph changes.
fn hello_workflow() -> Value {
    json!({
        "id": WORKFLOW_ID,
        "name": "Hello dashboard",
        "nodes": [
            {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": true, "parameters": {}},
            {"id": "greet", "name": "Greet", "type": "log",
             "parameters": {"message": "Hello, {{$input.name}}! You have {{$input.count}} new messages."}},
            {"id": "check", "name": "Many", "type": "conditional",
             "parameters": {"expression": "$input.count > 10"}},
            {"id": "approve", "name": "Approve", "type": "wait",
             "parameters": {"mode": "signal", "signal": "approve"}},
            {"id": "loud", "name": "Loud", "type": "log", "parameters": {"message": "That is a lot."}},
            {"id": "calm", "name": "Calm", "type": "log", "parameters": {"message": "All quiet."}},
            {"id": "done", "name": "Done", "type": "log", "parameters": {"message": "Summary: {{$Greet.message}}"}}
        ],
        "edges": [
            {"id": "e0", "src": "start", "dst": "greet"},
            {"id": "e1", "src": "greet", "dst": "check"},
            {"id": "e2", "src": "check", "dst": "approve", "on": "true"},
            {"id": "e2b", "src": "approve", "dst": "loud"},
            {"id": "e3", "src": "check", "dst": "calm", "on": "false"},
            {"id": "e4", "src": "loud", "dst": "done"},
            {"id": "e5", "src": "calm", "dst": "done"}
        ]
    })
}

/// The nodes the input `{"count": 12}` runs through; `calm` is the branch not taken.
const SUCCESS_PATH: [&str; 6] = ["start", "greet", "check", "approve", "loud", "done"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_the_dashboard_is_drawn_live_signalled_opened_and_a_second_one_cancelled() {
    let browser = Browser::ensure_installed();
    let mut cluster = Cluster::new();
    cluster.spawn_worker(&[]).await;
    let master = Master::spawn(&cluster).await;
    let http = reqwest::Client::new();

    let posted = http
        .post(master.url("/workflows"))
        .bearer_auth(TOKEN)
        .json(&hello_workflow())
        .send()
        .await
        .expect("POST /workflows");
    let status = posted.status();
    let body = posted.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST /workflows: {status} {body}");

    let mut driver = ChromeDriver::spawn(&browser, &cluster.dir);
    driver.wait_ready().await;
    let page = Page::open(&browser, &driver, &master).await;

    // The master requires a token: the dashboard asks for it, then shows the workflows.
    page.goto(&master.url("/#/workflows")).await;
    page.wait_for("#token-dialog[open]").await;
    page.type_into("#token-input", TOKEN).await;
    page.click("#token-save").await;
    let run_open = format!(r#"tr[data-workflow-id="{WORKFLOW_ID}"] button.run-open"#);
    page.wait_for(&run_open).await;
    page.click(&run_open).await;
    page.wait_for("#run-dialog[open]").await;

    // Input that is not JSON is refused in the dialog and never reaches the master.
    page.replace_text("#run-input", r#"{"name": "Ada","#).await;
    page.click("#run-button").await;
    page.wait_for("#run-error:not([hidden])").await;
    let error = page.text("#run-error").await;
    page.screenshot("dashboard-run-dialog.png").await;
    assert!(error.contains("not valid JSON"), "run error: {error:?}");
    assert!(
        page.url().await.ends_with("#/workflows"),
        "stayed on the workflows page"
    );
    let listed = master.get_json(&http, "/executions").await;
    assert_eq!(listed["executions"], json!([]), "nothing was started");

    page.replace_text("#run-input", r#"{"name": "Ada", "count": 12}"#)
        .await;
    page.click("#run-button").await;

    // The execution page follows the execution live: it stops at the signal wait (amber)
    // with the rest still pending and the execution cancellable.
    let execution_id = page.wait_for_execution_url().await;
    page.wait_for(r#"#dag g.dag-node[data-node-id="approve"][data-status="waiting"]"#)
        .await;
    for node in ["start", "greet", "check"] {
        page.wait_for(&format!(
            r#"#dag g.dag-node[data-node-id="{node}"][data-status="success"]"#
        ))
        .await;
    }
    for node in ["loud", "calm", "done"] {
        page.wait_for(&format!(
            r#"#dag g.dag-node[data-node-id="{node}"][data-status="pending"]"#
        ))
        .await;
    }
    page.wait_for(r#"#execution-status[data-status="running"]"#)
        .await;
    page.wait_for("#cancel-button:not([hidden])").await;
    page.screenshot("dashboard-waiting.png").await;

    // The waiting node's panel sends the signal; the rest of the path then turns green and
    // the branch not taken is shown as skipped once the execution completed.
    page.click(r#"#dag g.dag-node[data-node-id="approve"]"#)
        .await;
    page.replace_text("#signal-name", "approve").await;
    page.replace_text("#signal-data", r#"{"by": "Ada"}"#).await;
    page.click("#signal-button").await;
    for node in SUCCESS_PATH {
        page.wait_for(&format!(
            r#"#dag g.dag-node[data-node-id="{node}"][data-status="success"]"#
        ))
        .await;
    }
    page.wait_for(r#"#execution-status[data-status="completed"]"#)
        .await;
    page.wait_for(r#"#dag g.dag-node[data-node-id="calm"][data-status="skipped"]"#)
        .await;
    let record = master
        .get_json(&http, &format!("/executions/{execution_id}"))
        .await;
    assert_eq!(record["status"], "completed", "{record:#}");
    assert_eq!(record["input"], json!({"name": "Ada", "count": 12}));
    page.wait_for("#cancel-button[hidden]").await;
    let approved = page
        .text(r#"#node-panel[data-node-id="approve"] [data-field="output"]"#)
        .await;
    assert!(
        approved.contains(r#""by": "Ada""#),
        "approve output: {approved}"
    );
    page.screenshot("dashboard-execution.png").await;

    // Clicking a node opens its panel with the parameters it ran with and its output.
    page.click(r#"#dag g.dag-node[data-node-id="greet"]"#).await;
    page.wait_for(r#"#node-panel[data-node-id="greet"]:not([hidden])"#)
        .await;
    let greeting = "Hello, Ada! You have 12 new messages.";
    let output = page.text(r#"#node-panel [data-field="output"]"#).await;
    assert!(output.contains(greeting), "output panel: {output}");
    let parameters = page.text(r#"#node-panel [data-field="parameters"]"#).await;
    // The worker reports outputs, not resolved parameters: the panel shows the definition's.
    assert!(
        parameters.contains("Hello, {{$input.name}}!"),
        "parameters panel: {parameters}"
    );
    page.screenshot("dashboard-node-panel.png").await;

    // The executions list shows it, completed.
    page.click("#nav-executions").await;
    page.wait_for(&format!(
        r#"tr[data-execution-id="{execution_id}"][data-status="completed"]"#
    ))
    .await;
    page.screenshot("dashboard-executions.png").await;

    // A second run, cancelled from its page while it waits: it ends halted and the nodes it
    // never finished are shown as skipped, not as still waiting.
    page.goto(&master.url("/#/workflows")).await;
    page.click(&run_open).await;
    page.wait_for("#run-dialog[open]").await;
    page.replace_text("#run-input", r#"{"name": "Bob", "count": 11}"#)
        .await;
    page.click("#run-button").await;
    let cancelled_id = page.wait_for_execution_url().await;
    assert_ne!(cancelled_id, execution_id, "a new execution");
    page.wait_for(r#"#dag g.dag-node[data-node-id="approve"][data-status="waiting"]"#)
        .await;
    page.click("#cancel-button").await;
    page.wait_for(r#"#execution-status[data-status="halted"]"#)
        .await;
    // The node the cancel stopped shows `cancelled`; the ones that never ran, `skipped`.
    page.wait_for(r#"#dag g.dag-node[data-node-id="approve"][data-status="cancelled"]"#)
        .await;
    for node in ["loud", "calm", "done"] {
        page.wait_for(&format!(
            r#"#dag g.dag-node[data-node-id="{node}"][data-status="skipped"]"#
        ))
        .await;
    }
    page.wait_for("#cancel-button[hidden]").await;

    page.close().await;
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Browser {
    /// The browser binaries, installed with `scripts/browser` when the default ones are missing.
    fn ensure_installed() -> Self {
        let from_env = |var: &str, default: &str| {
            std::env::var_os(var)
                .map_or_else(|| (PathBuf::from(default), false), |p| (p.into(), true))
        };
        let (chromium, chromium_set) = from_env("BATON_TEST_CHROMIUM", "/usr/bin/chromium");
        let (chromedriver, driver_set) =
            from_env("BATON_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let browser = Self {
            chromium,
            chromedriver,
        };
        if browser.present() {
            return browser;
        }
        assert!(
            !chromium_set && !driver_set,
            "BATON_TEST_CHROMIUM / BATON_TEST_CHROMEDRIVER name missing files: {} {}",
            browser.chromium.display(),
            browser.chromedriver.display()
        );
        let script = workspace().join("scripts/browser");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success() && browser.present(),
            "Chromium is missing and {} could not install it:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        browser
    }

    fn present(&self) -> bool {
        self.chromium.is_file() && self.chromedriver.is_file()
    }
}

/// A chromedriver process on a free port, killed when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ChromeDriver {
    fn spawn(browser: &Browser, dir: &Path) -> Self {
        let port = free_port();
        let log = dir.join(format!("chromedriver-{port}.log"));
        let file = File::create(&log).expect("create the chromedriver log");
        let child = Command::new(&browser.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", browser.chromedriver.display()));
        Self { child, port, log }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", read(&self.log));
            }
            if first_status_code(self.port, "/status").await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "chromedriver did not answer within {BOUND:?}:\n{}",
            read(&self.log)
        );
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session on the dashboard, with waits that explain themselves when they fail.
struct Page {
    client: Client,
    master_log: PathBuf,
    shots: PathBuf,
}

impl Page {
    async fn open(browser: &Browser, driver: &ChromeDriver, master: &Master) -> Self {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": browser.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1400,1000"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start a Chromium session through chromedriver: {e}\n{}",
                    read(&driver.log)
                )
            });
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        Self {
            client,
            master_log: master.log.clone(),
            shots,
        }
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Waits (up to BOUND) for an element matching `css`; on timeout fails with what the page
    /// shows, a screenshot and the master's log.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(BOUND)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => self.fail(&format!("waiting for `{css}`: {e}")).await,
        }
    }

    async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("clicking `{css}`: {e}")).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.send_keys(text).await {
            self.fail(&format!("typing into `{css}`: {e}")).await;
        }
    }

    /// Clears the field and types `text`, then checks the field holds it: a live re-render of
    /// the page between the focus and the keys can drop them (typing again is what a user would
    /// do), at most three times.
    async fn replace_text(&self, css: &str, text: &str) {
        let mut held = None;
        for _ in 0..3 {
            let element = self.wait_for(css).await;
            if let Err(e) = element.clear().await {
                self.fail(&format!("clearing `{css}`: {e}")).await;
            }
            if let Err(e) = element.send_keys(text).await {
                self.fail(&format!("typing into `{css}`: {e}")).await;
            }
            held = element.prop("value").await.ok().flatten();
            if held.as_deref() == Some(text) {
                return;
            }
        }
        self.fail(&format!(
            "typed {text:?} into `{css}`, which holds {held:?}"
        ))
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        match element.text().await {
            Ok(text) => text,
            Err(e) => {
                self.fail(&format!("reading the text of `{css}`: {e}"))
                    .await
            }
        }
    }

    /// Waits until the page navigated to an execution and returns its id.
    async fn wait_for_execution_url(&self) -> String {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            let url = self.url().await;
            if let Some((_, id)) = url.split_once("#/executions/")
                && !id.is_empty()
            {
                return id.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.fail("waiting for the execution page after Run").await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.shots.join(name);
        match self.client.screenshot().await {
            Ok(png) => {
                if std::fs::write(&path, png).is_ok() {
                    eprintln!("screenshot: {}", path.display());
                }
            }
            Err(e) => eprintln!("screenshot {name}: {e}"),
        }
        path
    }

    /// Panics with the page's state: URL, node statuses, visible errors, the live indicator,
    /// a screenshot and the master's log.
    async fn fail(&self, what: &str) -> ! {
        let state = self
            .client
            .execute(
                "const nodes = [...document.querySelectorAll('g.dag-node')]
                   .map(n => n.dataset.nodeId + '=' + n.dataset.status).join(', ');
                 const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent : null; };
                 return {nodes, execution: text('#execution-status'), live: text('#live-indicator'),
                         page_error: text('#page-error'), run_error: text('#run-error'),
                         main: document.querySelector('#app').innerText.slice(0, 2000)};",
                vec![],
            )
            .await
            .unwrap_or_else(|e| json!(format!("(cannot read the page: {e})")));
        let shot = self.screenshot("dashboard-failure.png").await;
        panic!(
            "{what}\nurl: {}\npage: {state:#}\nscreenshot: {}\nmaster log:\n{}",
            self.url().await,
            shot.display(),
            tail(&read(&self.master_log), 60)
        );
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The master
// ---------------------------------------------------------------------------------------------

/// A `baton master` process with the cluster's prefixes, killed when dropped.
struct Master {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Master {
    async fn spawn(cluster: &Cluster) -> Self {
        let mut last_log = String::new();
        // A port found free can be taken before the master binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            let log = cluster.dir.join(format!("master-{port}.log"));
            let file = File::create(&log).expect("create the master log");
            let child = cluster
                .command()
                .arg("master")
                .env("BATON_MASTER_LISTEN", format!("127.0.0.1:{port}"))
                .env("BATON_API_TOKENS", TOKEN)
                // Under the cluster's key prefix, so its cleanup deletes the history too.
                .env(
                    "BATON_MASTER_KEY_PREFIX",
                    format!("{}:master:", cluster.key_prefix),
                )
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("clone the log handle"))
                .stderr(file)
                .spawn()
                .expect("spawn baton master");
            let mut master = Self { child, port, log };
            if master.wait_ready().await {
                return master;
            }
            last_log = read(&master.log);
        }
        panic!("baton master did not get ready within {BOUND:?}; its log:\n{last_log}");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_get_status(self.port, "/readyz").await == Some(200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get_json(&self, http: &reqwest::Client, path: &str) -> Value {
        let response = http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "master log ({}):\n{}",
                self.log.display(),
                tail(&read(&self.log), 80)
            );
        }
    }
}

/// The status code of `GET path` on 127.0.0.1:port, read from the first bytes of the answer:
/// chromedriver keeps the connection open despite `Connection: close`.
async fn first_status_code(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut len = 0;
        while len < 12 {
            let n = stream.read(&mut head[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let text = String::from_utf8_lossy(&head[..len]);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
