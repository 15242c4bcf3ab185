//! Fill-in-the-middle: prompt templates per model family, as data, with the
//! stop tokens each family needs; the probe that finds out whether a model
//! really fills a gap; and the record of its verdicts, which decides
//! whether inline completion asks a model by FIM or by a chat prompt.
//!
//! Without a verdict, a model of a known family gets its FIM template and
//! any other model a chat prompt. `aicockpit ai test` runs the probe and
//! records its verdict in `fim-verdicts.json` in the data folder, keyed by
//! service, base URL and model; a FIM-capable model of no known family is
//! then asked through llama.cpp's `/infill` (kind `llamacpp`) or the
//! completions endpoint's `suffix` (other kinds).

use std::path::{Path, PathBuf};

use aicockpit_ai::{AiError, Client, CompletionRequest};
use aicockpit_config::{ServiceConfig, ServiceKind};

/// One family's template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FimTemplate {
    pub family: &'static str,
    /// Lower-case substrings that must all appear in the model name.
    pub model_markers: &'static [&'static str],
    /// `{prefix}` and `{suffix}` are replaced.
    pub template: &'static str,
    pub stop: &'static [&'static str],
}

/// The known families, most specific first.
pub const TEMPLATES: &[FimTemplate] = &[
    FimTemplate {
        family: "qwen-coder",
        model_markers: &["qwen", "coder"],
        template: "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
        stop: &[
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|file_sep|>",
            "<|repo_name|>",
            "<|im_start|>",
            "<|fim_prefix|>",
        ],
    },
    FimTemplate {
        family: "deepseek-coder",
        model_markers: &["deepseek", "coder"],
        template: "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
        stop: &["<｜end▁of▁sentence｜>", "<|EOT|>", "<｜fim▁begin｜>"],
    },
    FimTemplate {
        family: "codellama",
        model_markers: &["codellama"],
        template: "<PRE> {prefix} <SUF>{suffix} <MID>",
        stop: &["<EOT>", "</s>", "<PRE>", "<SUF>"],
    },
    FimTemplate {
        family: "codestral",
        model_markers: &["codestral"],
        template: "[SUFFIX]{suffix}[PREFIX]{prefix}",
        stop: &["</s>", "[PREFIX]", "[SUFFIX]"],
    },
    FimTemplate {
        family: "starcoder",
        model_markers: &["starcoder"],
        template: "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
        stop: &[
            "<|endoftext|>",
            "<file_sep>",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
        ],
    },
];

/// The template for a model name, if its family is known.
pub fn template_for(model: &str) -> Option<&'static FimTemplate> {
    let model = model
        .to_ascii_lowercase()
        .replace("code-llama", "codellama");
    TEMPLATES
        .iter()
        .find(|t| t.model_markers.iter().all(|marker| model.contains(marker)))
}

impl FimTemplate {
    pub fn render(&self, prefix: &str, suffix: &str) -> String {
        // Replace the suffix first: a prefix containing "{suffix}" must stay as written.
        let (before, after) = self
            .template
            .split_once("{prefix}")
            .unwrap_or((self.template, ""));
        let fill = |part: &str| part.replace("{suffix}", suffix);
        format!("{}{prefix}{}", fill(before), fill(after))
    }
}

/// How inline completion asks a model for the text at the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FimMethod {
    /// The `/completions` endpoint with the family's FIM template as the prompt.
    Template,
    /// llama.cpp's `/infill`, which applies the model's own FIM tokens.
    Infill,
    /// The `/completions` endpoint with `suffix` (the server applies FIM).
    Suffix,
    /// A chat prompt that shows the code around `<CURSOR>`.
    Chat,
}

/// The FIM method to try for a model of `kind` (what the probe tests).
pub fn fim_method(kind: ServiceKind, model: &str) -> FimMethod {
    if template_for(model).is_some() {
        FimMethod::Template
    } else if kind == ServiceKind::Llamacpp {
        FimMethod::Infill
    } else {
        FimMethod::Suffix
    }
}

/// How inline completion asks: by the recorded verdict when there is one,
/// else FIM for a known family and chat for the rest.
pub fn inline_method(kind: ServiceKind, model: &str, verdict: Option<bool>) -> FimMethod {
    match verdict {
        Some(true) => fim_method(kind, model),
        Some(false) => FimMethod::Chat,
        None if template_for(model).is_some() => FimMethod::Template,
        None => FimMethod::Chat,
    }
}

/// Ask for the text between `prefix` and `suffix` by a FIM `method`
/// (not [`FimMethod::Chat`], which has its own prompt).
pub async fn fim_request(
    client: &Client,
    method: FimMethod,
    model: &str,
    prefix: &str,
    suffix: &str,
    max_tokens: u32,
    temperature: f32,
) -> Result<aicockpit_ai::CompletionReply, AiError> {
    let mut request = CompletionRequest {
        prompt: prefix.to_string(),
        suffix: Some(suffix.to_string()),
        max_tokens: Some(max_tokens),
        temperature: Some(temperature),
        ..CompletionRequest::default()
    };
    match (method, template_for(model)) {
        (FimMethod::Template, Some(template)) => {
            request.prompt = template.render(prefix, suffix);
            request.suffix = None;
            request.stop = template.stop.iter().map(|s| s.to_string()).collect();
            request.stop.truncate(4); // OpenAI-compatible servers accept at most four stop sequences.
            client.complete(&request).await
        }
        (FimMethod::Infill, _) => client.infill(&request).await,
        _ => client.complete(&request).await,
    }
}

/// The two questions of the probe: one prefix, two suffixes that each call
/// for a different middle (the name the next line uses).
pub const PROBE_PREFIX: &str = "def main():\n    ";
pub const PROBE_CASES: [(&str, &str); 2] = [
    (" = 42\n    return alpha_count + 1\n", "alpha_count"),
    (" = 42\n    return beta_total + 1\n", "beta_total"),
];

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FimProbe {
    /// The FIM method tested.
    pub method: FimMethod,
    /// Whether the model filled both gaps, each after its own suffix.
    pub fim_capable: bool,
    /// What inline completion will use for this model: the FIM method, or chat.
    pub inline_completion: FimMethod,
    /// The two answers.
    pub completions: Vec<String>,
    /// Why the model is not FIM-capable, with advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

const PROBE_ADVICE: &str = "use a FIM-capable completion model (e.g. Qwen2.5-Coder, DeepSeek-Coder, StarCoder2, Codestral), or keep this one: AiCockpit now asks it through chat prompts for inline completion";

/// Ask the model to fill the same gap before two different suffixes. A
/// model that honours the suffix answers each with the name its suffix
/// uses; one that ignores it answers both alike.
pub async fn probe(client: &Client) -> FimProbe {
    let service = client.service();
    let model = service
        .completion_model
        .clone()
        .or(service.chat_model.clone())
        .unwrap_or_default();
    let method = fim_method(service.kind, &model);
    let mut completions = Vec::new();
    let mut used_suffix = false;
    for (suffix, name) in PROBE_CASES {
        match fim_request(client, method, &model, PROBE_PREFIX, suffix, 16, 0.0).await {
            Ok(reply) => {
                used_suffix |= reply.text.contains(name);
                completions.push(reply.text);
            }
            Err(error) => {
                return FimProbe {
                    method,
                    fim_capable: false,
                    inline_completion: FimMethod::Chat,
                    completions,
                    warning: Some(format!(
                        "no fill-in-the-middle answer ({error}); {PROBE_ADVICE}"
                    )),
                }
            }
        }
    }
    let same = completions.first().map(|a| a.trim()) == completions.get(1).map(|b| b.trim());
    let empty = completions.iter().any(|c| c.trim().is_empty());
    let warning = if empty {
        Some(format!(
            "the model returned nothing for a gap; {PROBE_ADVICE}"
        ))
    } else if same {
        Some(format!(
            "the model gave the same answer for two different suffixes: it ignores the text after the gap; {PROBE_ADVICE}"
        ))
    } else if !used_suffix {
        Some(format!(
            "the model never used the name the text after the gap needs: it ignores the suffix; {PROBE_ADVICE}"
        ))
    } else {
        None
    };
    let fim_capable = warning.is_none();
    FimProbe {
        method,
        fim_capable,
        inline_completion: if fim_capable { method } else { FimMethod::Chat },
        completions,
        warning,
    }
}

/// One recorded verdict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FimVerdict {
    pub service: String,
    pub base_url: String,
    pub model: String,
    pub fim_capable: bool,
}

/// Where verdicts are recorded: `fim-verdicts.json` in the data folder.
pub fn verdicts_file(data_dir: &Path) -> PathBuf {
    data_dir.join("fim-verdicts.json")
}

fn verdict_model(service: &ServiceConfig) -> String {
    service
        .completion_model
        .clone()
        .or(service.chat_model.clone())
        .or(service.deployment.clone())
        .unwrap_or_default()
}

/// The recorded verdict for a service's completion model (a changed URL or
/// model needs a new probe).
pub fn recorded_verdict(data_dir: &Path, service: &ServiceConfig) -> Option<bool> {
    let text = std::fs::read_to_string(verdicts_file(data_dir)).ok()?;
    let verdicts: Vec<FimVerdict> = serde_json::from_str(&text).ok()?;
    let model = verdict_model(service);
    verdicts
        .iter()
        .find(|v| v.service == service.name && v.base_url == service.base_url && v.model == model)
        .map(|v| v.fim_capable)
}

/// Record a verdict, replacing the service's earlier one.
pub fn record_verdict(
    data_dir: &Path,
    service: &ServiceConfig,
    fim_capable: bool,
) -> std::io::Result<()> {
    let path = verdicts_file(data_dir);
    let mut verdicts: Vec<FimVerdict> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    verdicts.retain(|v| v.service != service.name);
    verdicts.push(FimVerdict {
        service: service.name.clone(),
        base_url: service.base_url.clone(),
        model: verdict_model(service),
        fim_capable,
    });
    std::fs::create_dir_all(data_dir)?;
    let text = serde_json::to_string_pretty(&verdicts).map_err(std::io::Error::other)?;
    // Write beside, then rename: a reader never sees half a file.
    let partial = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_recognised_by_model_name() {
        let cases = [
            ("qwen2.5-coder-1.5b-instruct", Some("qwen-coder")),
            ("Qwen/Qwen2.5-Coder-7B", Some("qwen-coder")),
            ("deepseek-coder-6.7b-base", Some("deepseek-coder")),
            ("codellama:7b-code", Some("codellama")),
            ("code-llama-13b", Some("codellama")),
            ("codestral-latest", Some("codestral")),
            ("bigcode/starcoder2-3b", Some("starcoder")),
            ("gpt-4o-mini", None),
            ("qwen2.5-7b-instruct", None),
        ];
        for (model, family) in cases {
            assert_eq!(template_for(model).map(|t| t.family), family, "{model}");
        }
    }

    #[test]
    fn templates_put_prefix_and_suffix_in_place() {
        let qwen = template_for("qwen2.5-coder").unwrap();
        assert_eq!(
            qwen.render("a{suffix}", "b"),
            "<|fim_prefix|>a{suffix}<|fim_suffix|>b<|fim_middle|>"
        );
        let codestral = template_for("codestral").unwrap();
        assert_eq!(codestral.render("P", "S"), "[SUFFIX]S[PREFIX]P");
    }

    #[test]
    fn verdicts_decide_the_inline_method() {
        let kinds = [ServiceKind::Llamacpp, ServiceKind::Custom];
        assert_eq!(inline_method(kinds[0], "smollm2", None), FimMethod::Chat);
        assert_eq!(
            inline_method(kinds[0], "smollm2", Some(true)),
            FimMethod::Infill
        );
        assert_eq!(
            inline_method(kinds[1], "smollm2", Some(true)),
            FimMethod::Suffix
        );
        assert_eq!(
            inline_method(kinds[1], "qwen2.5-coder", None),
            FimMethod::Template
        );
        assert_eq!(
            inline_method(kinds[1], "qwen2.5-coder", Some(false)),
            FimMethod::Chat
        );
    }

    #[test]
    fn verdicts_are_recorded_per_service_url_and_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut service = ServiceConfig {
            name: "local".into(),
            kind: ServiceKind::Llamacpp,
            base_url: "http://127.0.0.1:8080".into(),
            chat_model: Some("smollm2".into()),
            ..ServiceConfig::default()
        };
        assert_eq!(recorded_verdict(dir.path(), &service), None);
        record_verdict(dir.path(), &service, false).unwrap();
        assert_eq!(recorded_verdict(dir.path(), &service), Some(false));
        record_verdict(dir.path(), &service, true).unwrap();
        assert_eq!(recorded_verdict(dir.path(), &service), Some(true));
        service.completion_model = Some("other".into());
        assert_eq!(
            recorded_verdict(dir.path(), &service),
            None,
            "another model"
        );
    }
}
