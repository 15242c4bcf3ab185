//! `cargo bench --bench web_ide`: the web IDE in headless Chromium against
//! a real `aicockpit serve` with a Docker workspace and the mock AI service
//! answering at once (the set-up of `tests/integration/web.rs`).
//!
//! Measured in the page, with the browser's own clocks:
//! - the first load: bytes of the page, script and styles on the wire
//!   (gzip) and unpacked, from the Resource Timing entries;
//! - time to interactive: navigation start to the IDE drawn with its file
//!   tree and the language server connected, cold (a fresh profile) and
//!   warm (reloads, the bundle revalidated by its ETag);
//! - keystroke to ghost text: a key's `keydown` to the ghost text drawn,
//!   with the server's default debounce (75 ms) included;
//! - terminal echo: a key's `keydown` in the terminal to its echo drawn.
//!
//! Needs what the test needs (Docker with busybox-static, `chromium`,
//! `chromium-driver`).

#[allow(dead_code)]
#[path = "../../../tests/integration/web.rs"]
mod web;

use std::time::Duration;

use aicockpit_ai::mock::MockServer;
use fantoccini::Client;
use serde_json::Value;
use web::{
    browser, element, fail, keys, open_from_tree, run_script, wait_for_script, workspace_name, Rig,
    Step, CONTROL, DOWN, END, ESCAPE, HOME, LIB_RS, MAIN_RS, RELEASE, TEST_IMAGE,
};

const COLD_LOADS: usize = 5;
const RELOADS: usize = 10;
const GHOSTS: usize = 40;
const ECHOES: usize = 60;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("shown.to_uppercase()");
    let rig = Rig::start(&mock);
    let result = runtime.block_on(async {
        let client = browser(&rig.tools, rig.driver_port, &rig.base.join("profile")).await?;
        let outcome = measure(&client, &rig).await;
        let _ = client.close().await;
        outcome
    });
    rig.remove_workspace();
    if let Err(message) = result {
        eprintln!("{message}\n--- aicockpit serve log ---\n{}", rig.log());
        std::process::exit(1);
    }
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

fn report(name: &str, samples: &[f64]) {
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms min={:.1} ms max={:.1} ms",
        samples.len(),
        percentile(samples, 0.5),
        percentile(samples, 0.9),
        percentile(samples, 0.0),
        percentile(samples, 1.0)
    );
}

/// Navigation start to the IDE being usable: tree drawn, server connected.
const INTERACTIVE: &str = "const m = window.aicockpitMetrics; \
     return m && m.interactiveAt && m.connectedAt && document.querySelector('.tree-row') \
     ? Math.max(m.interactiveAt, m.connectedAt) : null";

async fn measure(client: &Client, rig: &Rig) -> Step<()> {
    let ws = workspace_name();
    let base = format!("http://127.0.0.1:{}", rig.port);
    client.goto(&rig.login_url).await.map_err(fail("sign in"))?;
    element(client, ".dashboard", "the dashboard").await?;
    run_script(
        client,
        &format!(
            "let r = await fetch('/api/v1/workspaces', {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
             body: JSON.stringify({{name: '{ws}', image: '{TEST_IMAGE}'}})}}); \
             if (!r.ok) return {{ error: 'create: ' + r.status + ' ' + await r.text() }}; \
             for (const [path, text] of [['src/lib.rs', {lib}], ['src/main.rs', {main}]]) {{ \
               r = await fetch('/api/v1/workspaces/{ws}/files?path=' + path, {{method: 'PUT', headers: {{'if-none-match': '*'}}, body: text}}); \
               if (!r.ok) return {{ error: path + ': ' + r.status }}; }} \
             return null;",
            lib = serde_json::to_string(LIB_RS).map_err(fail("encode"))?,
            main = serde_json::to_string(MAIN_RS).map_err(fail("encode"))?,
        ),
        "create the workspace",
    )
    .await?;

    // The IDE once, so the workspace's engine has started and indexed.
    client
        .goto(&format!("{base}/#/w/{ws}"))
        .await
        .map_err(fail("open the IDE"))?;
    wait_for_script(client, INTERACTIVE, "the IDE interactive").await?;
    element(
        client,
        ".statusbar .index[data-state=done]",
        "the index built",
    )
    .await?;

    // Cold: a fresh browser profile (nothing cached) with our session cookie.
    let cookies = client
        .get_all_cookies()
        .await
        .map_err(fail("the session cookie"))?;
    let mut cold = Vec::new();
    for run in 0..COLD_LOADS {
        let fresh = browser(
            &rig.tools,
            rig.driver_port,
            &rig.base.join(format!("profile-cold-{run}")),
        )
        .await?;
        fresh
            .goto(&format!("{base}/healthz"))
            .await
            .map_err(fail("open the origin"))?;
        for cookie in cookies.clone() {
            fresh
                .add_cookie(cookie)
                .await
                .map_err(fail("set the session cookie"))?;
        }
        fresh
            .goto(&format!("{base}/#/w/{ws}"))
            .await
            .map_err(fail("open the IDE cold"))?;
        let t = wait_for_script(&fresh, INTERACTIVE, "the IDE interactive (cold)").await?;
        cold.push(t.as_f64().unwrap_or(f64::NAN));
        if run == 0 {
            let sizes = fresh
                .execute(
                    "return performance.getEntriesByType('navigation') \
                     .concat(performance.getEntriesByType('resource')) \
                     .filter(e => { const p = new URL(e.name).pathname; return p === '/' || p.startsWith('/assets/'); }) \
                     .map(e => ({name: new URL(e.name).pathname, wire: e.encodedBodySize, size: e.decodedBodySize}))",
                    vec![],
                )
                .await
                .map_err(fail("resource sizes"))?;
            let (mut wire, mut unpacked) = (0, 0);
            for entry in sizes.as_array().into_iter().flatten() {
                println!(
                    "first load: {} {} bytes on the wire, {} unpacked",
                    entry["name"].as_str().unwrap_or("?"),
                    entry["wire"],
                    entry["size"]
                );
                wire += entry["wire"].as_u64().unwrap_or(0);
                unpacked += entry["size"].as_u64().unwrap_or(0);
            }
            println!("first load: {wire} bytes on the wire (gzip), {unpacked} unpacked");
        }
        let _ = fresh.close().await;
    }
    report("time to interactive, cold (fresh profile)", &cold);
    let mut warm = Vec::new();
    for _ in 0..RELOADS {
        client.refresh().await.map_err(fail("reload"))?;
        let t = wait_for_script(client, INTERACTIVE, "the IDE interactive after a reload").await?;
        warm.push(t.as_f64().unwrap_or(f64::NAN));
    }
    report(
        "time to interactive, warm (reload, bundle revalidated)",
        &warm,
    );

    // Keystroke to ghost text.
    open_from_tree(client, "src/lib.rs", true).await?;
    keys(
        client,
        &format!("{CONTROL}{HOME}{RELEASE}{DOWN}{DOWN}{DOWN}{END}let upper = "),
    )
    .await?;
    wait_for_script(
        client,
        "return document.querySelector('.cm-ghost') !== null",
        "a first ghost text (warming up)",
    )
    .await?;
    keys(client, &ESCAPE.to_string()).await?;
    run_script(
        client,
        "window.benchGhost = []; let t0 = 0; \
         document.addEventListener('keydown', (e) => { t0 = e.key.length === 1 ? e.timeStamp : 0; }, true); \
         new MutationObserver(() => { if (t0 && document.querySelector('.cm-ghost')) { \
           window.benchGhost.push(performance.now() - t0); t0 = 0; } }) \
           .observe(document.querySelector('.editor-area'), {childList: true, subtree: true}); \
         return null;",
        "install the ghost-text probe",
    )
    .await?;
    let mut misses = 0;
    for i in 0..GHOSTS {
        let before = client
            .execute("return window.benchGhost.length", vec![])
            .await
            .map_err(fail("read the probe"))?;
        // A different prefix every time, so no answer comes from the cache.
        let letter = char::from(b'a' + (i % 26) as u8);
        keys(client, &letter.to_string()).await?;
        let seen = wait_briefly(
            client,
            &format!("return window.benchGhost.length > {before}"),
            Duration::from_secs(3),
        )
        .await?;
        if !seen {
            misses += 1;
        }
        keys(client, &ESCAPE.to_string()).await?;
    }
    let ghost = client
        .execute("return window.benchGhost", vec![])
        .await
        .map_err(fail("read the probe"))?;
    let ghost: Vec<f64> = ghost
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    report("keystroke to ghost text (mock answering at once)", &ghost);
    // The IDE's own measure: from the request being scheduled to the ghost
    // drawn (so keystroke handling before it is the difference).
    let own = client
        .execute(
            "return window.aicockpitMetrics.ghostLatenciesMs.slice(-40)",
            vec![],
        )
        .await
        .map_err(fail("read the IDE's metrics"))?;
    let own: Vec<f64> = own
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    report("  of which request scheduled to ghost drawn", &own);
    if misses > 0 {
        println!("keystroke to ghost text: {misses} keystrokes showed no ghost within 3 s");
    }

    // Terminal echo.
    element(client, ".terminal .xterm-helper-textarea", "the terminal")
        .await?
        .click()
        .await
        .map_err(fail("focus the terminal"))?;
    wait_for_script(
        client,
        "return document.querySelector('.terminal .xterm-rows')?.innerText.includes('$')",
        "the prompt",
    )
    .await?;
    keys(client, "echo ").await?;
    wait_for_script(
        client,
        "return document.querySelector('.terminal .xterm-rows')?.innerText.replace(/\\u00a0/g, ' ').includes('$ echo ')",
        "`echo ` at the prompt",
    )
    .await?;
    run_script(
        client,
        "window.benchEcho = []; window.benchTyped = ''; let t0 = 0; \
         const rows = document.querySelector('.terminal .xterm-rows'); \
         document.querySelector('.terminal .xterm-helper-textarea').addEventListener('keydown', (e) => { \
           t0 = e.timeStamp; window.benchTyped += e.key; }, true); \
         new MutationObserver(() => { \
           if (t0 && rows.innerText.replace(/\\u00a0/g, ' ').includes('echo ' + window.benchTyped)) { \
             window.benchEcho.push(performance.now() - t0); t0 = 0; } }) \
           .observe(rows, {childList: true, subtree: true, characterData: true}); \
         return null;",
        "install the echo probe",
    )
    .await?;
    let mut missed = 0;
    for i in 0..ECHOES {
        let before = client
            .execute("return window.benchEcho.length", vec![])
            .await
            .map_err(fail("read the probe"))?;
        let letter = char::from(b'a' + (i % 26) as u8);
        keys(client, &letter.to_string()).await?;
        if !wait_briefly(
            client,
            &format!("return window.benchEcho.length > {before}"),
            Duration::from_secs(3),
        )
        .await?
        {
            missed += 1;
        }
    }
    if missed > 0 {
        println!("terminal echo: {missed} keystrokes not seen echoed within 3 s");
    }
    let echo = client
        .execute("return window.benchEcho", vec![])
        .await
        .map_err(fail("read the probe"))?;
    let echo: Vec<f64> = echo
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    report("terminal echo (keydown to the character drawn)", &echo);
    Ok(())
}

/// Poll a script until it is true or `within` passes; false on timeout.
async fn wait_briefly(client: &Client, script: &str, within: Duration) -> Step<bool> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = client.execute(script, vec![]).await.map_err(fail("poll"))?;
        if value == Value::Bool(true) {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
