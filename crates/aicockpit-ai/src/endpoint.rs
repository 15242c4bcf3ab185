//! Where each kind of service wants its requests, and how it wants the key.
//! The only place that knows the difference between providers.

use aicockpit_config::{ServiceConfig, ServiceKind};

/// The default Azure OpenAI API version when the config names none.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// An operation on a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Models,
    ChatCompletions,
    Completions,
    Embeddings,
    /// llama.cpp: the server's properties (`n_ctx`), at the server's root.
    Props,
    /// llama.cpp: native fill-in-the-middle, at the server's root.
    Infill,
}

/// The URL of an operation on a service.
pub fn url(service: &ServiceConfig, operation: Operation) -> String {
    let base = service.base_url.trim_end_matches('/');
    match service.kind {
        ServiceKind::Azure => {
            let version = service
                .api_version
                .as_deref()
                .unwrap_or(AZURE_DEFAULT_API_VERSION);
            let deployment = service.deployment.as_deref().unwrap_or_default();
            let path = match operation {
                Operation::Models => "models".to_string(),
                Operation::ChatCompletions => format!("deployments/{deployment}/chat/completions"),
                Operation::Completions => format!("deployments/{deployment}/completions"),
                Operation::Embeddings => format!("deployments/{deployment}/embeddings"),
                Operation::Props => "props".to_string(),
                Operation::Infill => "infill".to_string(),
            };
            let base = base.strip_suffix("/openai").unwrap_or(base);
            format!("{base}/openai/{path}?api-version={version}")
        }
        ServiceKind::Ollama if operation == Operation::Embeddings => {
            // Ollama's native batch embeddings (`/api/embed`), at the root.
            let root = base.strip_suffix("/v1").unwrap_or(base);
            format!("{root}/api/embed")
        }
        ServiceKind::Llamacpp if matches!(operation, Operation::Props | Operation::Infill) => {
            // llama.cpp's own endpoints live at the root, beside /v1.
            let root = base.strip_suffix("/v1").unwrap_or(base);
            let path = if operation == Operation::Props {
                "props"
            } else {
                "infill"
            };
            format!("{root}/{path}")
        }
        kind => {
            // Ollama and llama.cpp serve the OpenAI dialect under /v1.
            let base = if matches!(kind, ServiceKind::Ollama | ServiceKind::Llamacpp)
                && !base.ends_with("/v1")
            {
                format!("{base}/v1")
            } else {
                base.to_string()
            };
            let path = match operation {
                Operation::Models => "models",
                Operation::ChatCompletions => "chat/completions",
                Operation::Completions => "completions",
                Operation::Embeddings => "embeddings",
                Operation::Props => "props",
                Operation::Infill => "infill",
            };
            format!("{base}/{path}")
        }
    }
}

/// The header that carries the key: `api-key` for Azure, `Authorization: Bearer` otherwise.
pub fn auth_header(kind: ServiceKind, key: &str) -> (&'static str, String) {
    match kind {
        ServiceKind::Azure => ("api-key", key.to_string()),
        _ => ("authorization", format!("Bearer {key}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(kind: ServiceKind, base_url: &str) -> ServiceConfig {
        ServiceConfig {
            name: "s".into(),
            kind,
            base_url: base_url.into(),
            ..ServiceConfig::default()
        }
    }

    #[test]
    fn urls_per_kind() {
        let openai = service(ServiceKind::Openai, "https://api.openai.com/v1/");
        assert_eq!(
            url(&openai, Operation::ChatCompletions),
            "https://api.openai.com/v1/chat/completions"
        );
        let ollama = service(ServiceKind::Ollama, "http://127.0.0.1:11434");
        assert_eq!(
            url(&ollama, Operation::Models),
            "http://127.0.0.1:11434/v1/models"
        );
        for base in ["http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/"] {
            assert_eq!(
                url(&service(ServiceKind::Ollama, base), Operation::Embeddings),
                "http://127.0.0.1:11434/api/embed"
            );
        }
        let mut azure = service(ServiceKind::Azure, "https://res.openai.azure.com");
        azure.deployment = Some("gpt-4o".into());
        assert_eq!(
            url(&azure, Operation::ChatCompletions),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        for base in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/"] {
            let llamacpp = service(ServiceKind::Llamacpp, base);
            assert_eq!(
                url(&llamacpp, Operation::Completions),
                "http://127.0.0.1:8080/v1/completions"
            );
            assert_eq!(
                url(&llamacpp, Operation::Props),
                "http://127.0.0.1:8080/props"
            );
            assert_eq!(
                url(&llamacpp, Operation::Infill),
                "http://127.0.0.1:8080/infill"
            );
        }
        azure.api_version = Some("2025-01-01-preview".into());
        assert!(url(&azure, Operation::Embeddings)
            .ends_with("/deployments/gpt-4o/embeddings?api-version=2025-01-01-preview"));
        assert_eq!(
            auth_header(ServiceKind::Azure, "k"),
            ("api-key", "k".to_string())
        );
        assert_eq!(
            auth_header(ServiceKind::Lmstudio, "k"),
            ("authorization", "Bearer k".to_string())
        );
    }
}
