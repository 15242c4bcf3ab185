//! Fill-in-the-middle prompt templates per model family, as data, with the
//! stop tokens each family needs. A model whose name matches no family is
//! prompted through chat instead.

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
}
