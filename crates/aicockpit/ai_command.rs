//! `aicockpit ai …`: list, add, remove, test and choose AI services. Edits
//! the config file; keys are referenced by variable or stored with mode 0600.

use std::io::Read;
use std::path::Path;

use aicockpit_ai::{
    client_for, key_file, remove_keys, resolve_key, store_key, ApiKey, ClientOptions, KeySource,
};
use aicockpit_config::{Config, Paths, ServiceConfig, ServiceKind};
use aicockpit_engine::fim::{self, FimMethod};
use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::terminal_text::printable;

#[derive(Subcommand)]
pub enum AiCommand {
    /// List the configured services (keys are never shown, only where they come from).
    List {
        /// Print the services as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a service to the config file.
    Add {
        /// A name for the service, used by `ai use`, `ai test` and `ai.active`.
        name: String,
        /// openai, azure, lmstudio, ollama, llamacpp or custom (any OpenAI-compatible URL).
        #[arg(long)]
        kind: String,
        /// The base URL, e.g. http://127.0.0.1:1234/v1 or https://RESOURCE.openai.azure.com.
        #[arg(long)]
        url: String,
        /// The model for chat and code actions; LM Studio and Ollama pick a loaded one when unset.
        #[arg(long)]
        chat_model: Option<String>,
        /// Defaults to the chat model.
        #[arg(long)]
        completion_model: Option<String>,
        /// The environment variable holding the API key.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Read the API key from stdin and store it in the data folder with mode 0600.
        #[arg(long, conflicts_with = "api_key_env")]
        api_key_stdin: bool,
        /// Azure: the deployment name.
        #[arg(long)]
        deployment: Option<String>,
        /// Azure: the API version.
        #[arg(long)]
        api_version: Option<String>,
        /// Make it the active service.
        #[arg(long = "use")]
        activate: bool,
    },
    /// Remove a service (and its stored key).
    Remove {
        /// The service's name (see `aicockpit ai list`).
        name: String,
    },
    /// Make a service the active one.
    Use {
        /// The service's name (see `aicockpit ai list`).
        name: String,
    },
    /// Test a service (default: the active one): list its models and measure
    /// latency, then probe whether its completion model really fills a gap
    /// (the verdict decides FIM or chat prompts for inline completion).
    Test {
        /// The service's name (default: the active service).
        name: Option<String>,
        /// Print the results as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(paths: &Paths, command: AiCommand) -> Result<()> {
    // Edits start from the file alone, so environment overrides are not written back.
    let mut file_config = Config::load_file(&paths.config_file)?;
    match command {
        AiCommand::List { json } => {
            let config = Config::load(paths)?;
            list(paths, &config, json)
        }
        AiCommand::Add {
            name,
            kind,
            url,
            chat_model,
            completion_model,
            api_key_env,
            api_key_stdin,
            deployment,
            api_version,
            activate,
        } => {
            // Two names that map to one key file would share a key.
            if file_config
                .ai
                .services
                .iter()
                .any(|s| key_file(&paths.data_dir, &s.name) == key_file(&paths.data_dir, &name))
            {
                bail!(
                    "a service named {name:?} exists already; remove it first or pick another name"
                );
            }
            let kind: ServiceKind = serde_json::from_value(serde_json::Value::String(kind.clone()))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "unknown kind {kind:?}; kinds: openai, azure, lmstudio, ollama, llamacpp, custom"
                    )
                })?;
            file_config.ai.services.push(ServiceConfig {
                name: name.clone(),
                kind,
                base_url: url,
                chat_model,
                completion_model,
                api_key_env,
                deployment,
                api_version,
            });
            // With no `active`, the first service is active, so a first service needs no flag.
            if activate {
                file_config.ai.active = Some(name.clone());
            }
            // Errors name the flag that was typed, not the config key behind it.
            file_config
                .validate()
                .map_err(|error| flag_error(error, &file_config))?;
            if api_key_stdin {
                let mut key = String::new();
                std::io::stdin()
                    .read_to_string(&mut key)
                    .context("cannot read the key from stdin")?;
                let key = key.trim();
                if key.is_empty() {
                    bail!("no key on stdin");
                }
                let path = store_key(&paths.data_dir, &name, &ApiKey::new(key))
                    .context("cannot store the key")?;
                eprintln!("Stored the key in {} (mode 0600)", path.display());
            }
            save(&file_config, &paths.config_file)?;
            if matches!(kind, ServiceKind::Openai | ServiceKind::Azure)
                && !api_key_stdin
                && file_config
                    .ai
                    .services
                    .iter()
                    .find(|s| s.name == name)
                    .is_some_and(|s| s.api_key_env.is_none())
            {
                eprintln!(
                    "warning: {name} has no API key, and {} refuses requests without one: \
                     add it again with --api-key-env VARIABLE or --api-key-stdin",
                    if kind == ServiceKind::Azure {
                        "Azure OpenAI"
                    } else {
                        "OpenAI"
                    }
                );
            }
            println!(
                "Added {name}{}",
                if file_config
                    .ai
                    .active_service()
                    .is_some_and(|s| s.name == name)
                {
                    " (active)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        AiCommand::Remove { name } => {
            let before = file_config.ai.services.len();
            file_config.ai.services.retain(|s| s.name != name);
            if file_config.ai.services.len() == before {
                bail!("no service named {name:?}");
            }
            if file_config.ai.active.as_deref() == Some(&name) {
                file_config.ai.active = file_config.ai.services.first().map(|s| s.name.clone());
            }
            save(&file_config, &paths.config_file)?;
            remove_keys(&paths.data_dir, &name, &file_config.ai);
            println!("Removed {name}");
            Ok(())
        }
        AiCommand::Use { name } => {
            if !file_config.ai.services.iter().any(|s| s.name == name) {
                let known: Vec<&str> = file_config
                    .ai
                    .services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                bail!(
                    "no service named {name:?}; configured: {}",
                    known.join(", ")
                );
            }
            file_config.ai.active = Some(name.clone());
            save(&file_config, &paths.config_file)?;
            println!("Active service: {name}");
            Ok(())
        }
        AiCommand::Test { name, json } => {
            let config = Config::load(paths)?;
            test(paths, &config, name, json)
        }
    }
}

/// A config error about the service being added, with the `ai add` flag
/// that set the value named instead of its config key.
fn flag_error(error: aicockpit_config::ConfigError, config: &Config) -> anyhow::Error {
    let aicockpit_config::ConfigError::Invalid { key, message } = &error else {
        return error.into();
    };
    let last = config.ai.services.len().saturating_sub(1);
    let Some(field) = key.strip_prefix(&format!("ai.services[{last}].")) else {
        return error.into();
    };
    let flag = match field {
        "base_url" => "--url",
        "name" => "NAME",
        "deployment" => "--deployment",
        "chat_model" => "--chat-model",
        "completion_model" => "--completion-model",
        "api_key_env" => "--api-key-env",
        "api_version" => "--api-version",
        _ => return error.into(),
    };
    anyhow::anyhow!("{flag}: {message}")
}

fn save(config: &Config, path: &Path) -> Result<()> {
    config.validate()?;
    config.save(path)?;
    Ok(())
}

fn list(paths: &Paths, config: &Config, json: bool) -> Result<()> {
    let rows: Vec<serde_json::Value> = config
        .ai
        .services
        .iter()
        .map(|service| {
            let (_, source) = resolve_key(service, &config.ai, &paths.data_dir, |name| {
                std::env::var(name).ok()
            });
            serde_json::json!({
                "name": service.name,
                "kind": service.kind,
                "base_url": service.base_url,
                "chat_model": service.chat_model,
                "completion_model": service.completion_model.as_ref().or(service.chat_model.as_ref()),
                "deployment": service.deployment,
                "key": source,
                "active": config.ai.active_service().is_some_and(|active| active.name == service.name),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for (row, service) in rows.iter().zip(&config.ai.services) {
        let (_, source) = resolve_key(service, &config.ai, &paths.data_dir, |name| {
            std::env::var(name).ok()
        });
        let key = match source {
            KeySource::None => "no key".to_string(),
            KeySource::Env {
                variable,
                set: true,
            } => format!("key from ${variable}"),
            KeySource::Env {
                variable,
                set: false,
            } => format!("key from ${variable} (not set)"),
            KeySource::Stored { .. } => "stored key".to_string(),
            KeySource::Withheld { reason } => format!("no key: {reason}"),
            KeySource::Ambiguous { path, .. } => {
                format!(
                    "old key file {} is shared; store the key again",
                    path.display()
                )
            }
        };
        let marker = if row["active"] == true { "*" } else { " " };
        let models = match (&service.chat_model, &service.completion_model) {
            (Some(chat), Some(completion)) if chat != completion => {
                format!("chat {chat}, completion {completion}")
            }
            (Some(chat), _) => chat.clone(),
            (None, Some(completion)) => format!("completion {completion}"),
            (None, None) => "no model set".to_string(),
        };
        println!(
            "{marker} {:<12} {:<9} {}  ({models}; {key})",
            service.name,
            format!("{:?}", service.kind).to_lowercase(),
            service.base_url
        );
    }
    Ok(())
}

fn test(paths: &Paths, config: &Config, name: Option<String>, json: bool) -> Result<()> {
    let name = name
        .or_else(|| config.ai.active_service().map(|s| s.name.clone()))
        .context("no service named and none is active")?;
    let service = config
        .ai
        .services
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no service named {name:?}"))?
        .clone();
    // The same key rule as the language server's: a variable that is not set
    // is an error naming it, before any request.
    let client = client_for(
        service.clone(),
        &config.ai,
        &paths.data_dir,
        |name| std::env::var(name).ok(),
        ClientOptions {
            max_retries: 1,
            ..ClientOptions::default()
        },
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(client.test());
    // LM Studio and Ollama entries without a model use one the service lists.
    let discovers = matches!(service.kind, ServiceKind::Lmstudio | ServiceKind::Ollama)
        && !report.models.is_empty();
    let probe = if report.ok
        && (service.completion_model.is_some() || service.chat_model.is_some() || discovers)
    {
        let probe = runtime.block_on(fim::probe(&client));
        if let Err(error) = fim::record_verdict(&paths.data_dir, &service, probe.fim_capable) {
            eprintln!("warning: cannot record the fill-in-the-middle verdict: {error}");
        }
        Some(probe)
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "test": report, "fim_probe": probe })
        );
    } else if report.ok {
        println!(
            "{name}: OK in {:.0} ms; models: {}",
            report.latency_ms,
            if report.models.is_empty() {
                "(none listed)".to_string()
            } else {
                // Model names are the service's to choose, escape sequences included.
                printable(&report.models.join(", ")).into_owned()
            }
        );
        if discovers && service.completion_model.is_none() && service.chat_model.is_none() {
            println!(
                "{name}: no model set: using one the service lists (set --chat-model to choose)"
            );
        }
        if let Some(probe) = &probe {
            let method = |method: FimMethod| match method {
                FimMethod::Template => "its family's FIM template",
                FimMethod::Infill => "llama.cpp's /infill",
                FimMethod::Suffix => "the completions endpoint with `suffix`",
                FimMethod::Chat => "chat prompts",
            };
            match &probe.warning {
                None => println!(
                    "{name}: fill-in-the-middle OK: filled two gaps after their own suffixes ({:?}); inline completion uses {}",
                    probe.completions,
                    method(probe.inline_completion)
                ),
                Some(warning) => {
                    println!(
                        "warning: {name}: not fill-in-the-middle capable: {}",
                        printable(warning)
                    );
                    println!(
                        "{name}: inline completion uses {}",
                        method(probe.inline_completion)
                    );
                }
            }
        }
    }
    match report.error {
        Some(error) => bail!("{error}"),
        None => Ok(()),
    }
}
