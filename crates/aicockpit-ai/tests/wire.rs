//! The client against the mock server over real HTTP: every wire format,
//! every provider's URL and header scheme, and every way a service misbehaves.

use std::time::{Duration, Instant};

use aicockpit_ai::mock::{Behavior, MockServer};
use aicockpit_ai::{
    AiError, ApiKey, ChatMessage, ChatRequest, Client, ClientOptions, CompletionRequest, Role,
    MAX_ANSWER_BYTES, MAX_ERROR_BODY_BYTES, MAX_ERROR_MESSAGE_CHARS, MAX_REPLY_BYTES,
};
use aicockpit_config::{ServiceConfig, ServiceKind};

fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
        max_stream: Duration::from_secs(30),
    }
}

fn service(kind: ServiceKind, base_url: String) -> ServiceConfig {
    ServiceConfig {
        name: "mock".into(),
        kind,
        base_url,
        chat_model: Some("mock-chat".into()),
        completion_model: Some("mock-coder".into()),
        ..ServiceConfig::default()
    }
}

fn client(mock: &MockServer) -> Client {
    Client::new(service(ServiceKind::Lmstudio, mock.url()), None, options()).unwrap()
}

fn question() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "Hi?")],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn models_chat_completions_and_embeddings() {
    let mock = MockServer::start().await;
    let client = client(&mock);
    assert_eq!(
        client.list_models().await.unwrap(),
        ["mock-chat", "mock-coder"]
    );

    mock.set_reply("Plain answer.");
    let reply = client.chat(&question()).await.unwrap();
    assert_eq!(reply.content, "Plain answer.");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));

    let completion = CompletionRequest {
        prompt: "def add(a, b):\n    return ".into(),
        suffix: Some("\n\nprint(add(1, 2))\n".into()),
        stop: vec!["\n\n".into()],
        ..CompletionRequest::default()
    };
    mock.set_reply("a + b");
    assert_eq!(client.complete(&completion).await.unwrap().text, "a + b");

    let vectors = client
        .embed(Some("embedder"), &["ab".into(), "abcd".into()])
        .await
        .unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), aicockpit_ai::mock::EMBEDDING_DIMENSION);
    assert_ne!(vectors[0], vectors[1], "different words, different vectors");

    let requests = mock.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/models",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings"
        ]
    );
    assert_eq!(requests[1].body["model"], "mock-chat");
    assert_eq!(requests[1].body["messages"][0]["content"], "Hi?");
    assert_eq!(requests[1].body["stream"], false);
    assert_eq!(
        requests[2].body["model"], "mock-coder",
        "completions use the completion model"
    );
    assert_eq!(requests[2].body["suffix"], "\n\nprint(add(1, 2))\n");
    assert_eq!(requests[2].body["stop"][0], "\n\n");
    assert!(
        requests.iter().all(|r| r.header("authorization").is_none()),
        "no key, no header"
    );
}

#[tokio::test]
async fn ollama_embeds_through_its_native_api_in_input_order() {
    let mock = MockServer::start().await;
    // The mock's root stands in for Ollama's `http://127.0.0.1:11434`.
    let ollama = Client::new(
        service(ServiceKind::Ollama, mock.root_url()),
        None,
        options(),
    )
    .unwrap();
    let inputs = ["retry the upload".to_string(), "parse a date".to_string()];
    let vectors = ollama
        .embed(Some("nomic-embed-text"), &inputs)
        .await
        .unwrap();
    let openai = client(&mock)
        .embed(Some("embedder"), &inputs)
        .await
        .unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(
        vectors, openai,
        "the same texts, the same vectors, in input order"
    );
    let requests = mock.requests();
    assert_eq!(requests[0].path, "/api/embed");
    assert_eq!(requests[0].body["model"], "nomic-embed-text");
    assert_eq!(requests[0].body["input"][1], "parse a date");
}

#[tokio::test]
async fn streamed_chat_survives_split_frames_and_keep_alives() {
    let mock = MockServer::start().await;
    let client = client(&mock);
    mock.set_reply("one two three four");
    for behavior in [
        Behavior::Normal,
        Behavior::SplitFrames(3),
        Behavior::SplitFrames(1),
    ] {
        mock.set_behavior(behavior.clone());
        let mut pieces = Vec::new();
        let reply = client
            .chat_stream(&question(), |piece| pieces.push(piece.to_string()))
            .await
            .unwrap();
        assert_eq!(reply.content, "one two three four", "{behavior:?}");
        assert_eq!(pieces, ["one ", "two ", "three ", "four"], "{behavior:?}");
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    }
    assert_eq!(mock.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn an_error_in_the_middle_of_a_stream_is_reported_with_its_message() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::ErrorMidStream);
    let error = client(&mock)
        .chat_stream(&question(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, AiError::Stream { .. }), "{error:?}");
    assert!(
        error.to_string().contains("The model crashed mid-stream"),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("mock:"),
        "names the service: {error}"
    );
}

#[tokio::test]
async fn azure_uses_deployment_urls_api_version_and_the_api_key_header() {
    let mock = MockServer::start().await;
    let mut config = service(ServiceKind::Azure, mock.root_url());
    config.deployment = Some("gpt-4o".into());
    config.api_version = Some("2024-10-21".into());
    let client = Client::new(config, Some(ApiKey::new("azure-secret")), options()).unwrap();
    client.chat(&question()).await.unwrap();
    client.chat_stream(&question(), |_| {}).await.unwrap();
    for request in mock.requests() {
        assert_eq!(
            request.path,
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(request.header("api-key"), Some("azure-secret"));
        assert_eq!(request.header("authorization"), None);
    }
}

#[tokio::test]
async fn openai_sends_a_bearer_key_and_ollama_its_v1_endpoint() {
    let mock = MockServer::start().await;
    let openai = Client::new(
        service(ServiceKind::Openai, mock.url()),
        Some(ApiKey::new("sk-test")),
        options(),
    )
    .unwrap();
    openai.chat(&question()).await.unwrap();
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-test")
    );
    let ollama = Client::new(
        service(ServiceKind::Ollama, mock.root_url()),
        None,
        options(),
    )
    .unwrap();
    ollama.chat(&question()).await.unwrap();
    assert_eq!(mock.requests()[1].path, "/v1/chat/completions");
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::RateLimited {
        retry_after_secs: 1,
        times: 1,
    });
    let started = Instant::now();
    let reply = client(&mock).chat(&question()).await.unwrap();
    assert_eq!(reply.content, "Hello from the mock.");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(mock.requests().len(), 2);

    // A Retry-After beyond what we wait for is returned at once, with the service's message.
    mock.set_behavior(Behavior::RateLimited {
        retry_after_secs: 3600,
        times: 1,
    });
    let error = client(&mock).chat(&question()).await.unwrap_err();
    assert!(
        matches!(error, AiError::Status { status: 429, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("Rate limit reached for requests"),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_reported() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::ServerError { times: 2 });
    assert!(client(&mock).chat(&question()).await.is_ok());
    assert_eq!(mock.requests().len(), 3);

    mock.set_behavior(Behavior::ServerError { times: 10 });
    let error = client(&mock).chat(&question()).await.unwrap_err();
    assert_eq!(mock.requests().len(), 3 + 4, "first try and three retries");
    assert_eq!(
        error.to_string(),
        "mock: HTTP 500: The server had an error while processing your request."
    );
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::Garbage);
    let error = client(&mock).chat(&question()).await.unwrap_err();
    assert!(matches!(error, AiError::Protocol { .. }), "{error:?}");
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn a_silent_service_times_out_and_the_request_is_dropped() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::Hang);
    let mut options = options();
    options.idle_timeout = Duration::from_millis(300);
    options.max_retries = 0;
    let client = Client::new(service(ServiceKind::Custom, mock.url()), None, options).unwrap();
    let started = Instant::now();
    let error = client.chat(&question()).await.unwrap_err();
    assert!(matches!(error, AiError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    wait_until(|| mock.requests().first().is_some_and(|r| r.dropped)).await;
}

#[tokio::test]
async fn cancelling_drops_the_http_request() {
    let mock = MockServer::start().await;
    mock.set_behavior(Behavior::Slow(Duration::from_secs(10)));
    let client = client(&mock);
    let task = tokio::spawn(async move { client.chat(&question()).await });
    wait_until(|| !mock.requests().is_empty()).await;
    task.abort();
    wait_until(|| mock.requests()[0].dropped).await;
}

#[tokio::test]
async fn an_unreachable_service_is_a_clear_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut options = options();
    options.max_retries = 1;
    let client = Client::new(
        service(ServiceKind::Lmstudio, format!("http://127.0.0.1:{port}/v1")),
        None,
        options,
    )
    .unwrap();
    let error = client.chat(&question()).await.unwrap_err();
    assert!(matches!(error, AiError::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!(
            "mock: cannot connect to http://127.0.0.1:{port}/v1/chat/completions"
        )),
        "{error}"
    );
    let test = client.test().await;
    assert!(!test.ok && test.error.as_deref().unwrap().contains("cannot connect"));
}

#[tokio::test]
async fn test_reports_models_and_latency_and_a_missing_model_is_named() {
    let mock = MockServer::start().await;
    let report = client(&mock).test().await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.models, ["mock-chat", "mock-coder"]);
    assert!(report.latency_ms > 0.0);
    // A custom service gets no guessed model (LM Studio and Ollama do, below).
    let mut config = service(ServiceKind::Custom, mock.url());
    config.chat_model = None;
    let error = Client::new(config, None, options())
        .unwrap()
        .chat(&question())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`chat_model`"), "{error}");
}

async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn llamacpp_props_and_infill_at_the_server_root() {
    let mock = MockServer::start().await;
    let client = Client::new(
        service(ServiceKind::Llamacpp, mock.root_url()),
        None,
        options(),
    )
    .unwrap();
    assert_eq!(
        client.served_context_tokens().await.unwrap(),
        None,
        "no /props"
    );
    mock.set_context_tokens(Some(2048));
    assert_eq!(client.served_context_tokens().await.unwrap(), Some(2048));
    let other = Client::new(service(ServiceKind::Custom, mock.url()), None, options()).unwrap();
    let before = mock.requests().len();
    assert_eq!(other.served_context_tokens().await.unwrap(), None);
    assert_eq!(mock.requests().len(), before, "only llama.cpp is asked");

    let request = CompletionRequest {
        prompt: "x = ".into(),
        suffix: Some("\nprint(wanted_name)\n".into()),
        max_tokens: Some(8),
        ..CompletionRequest::default()
    };
    let error = client.infill(&request).await.unwrap_err();
    assert!(
        matches!(error, AiError::Status { status: 501, .. })
            && error
                .to_string()
                .contains("Infill is not supported by this model"),
        "{error}"
    );
    mock.set_fim(true);
    let reply = client.infill(&request).await.unwrap();
    assert_eq!(reply.text, "wanted_name");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/infill");
    assert_eq!(sent.body["input_prefix"], "x = ");
    assert_eq!(sent.body["input_suffix"], "\nprint(wanted_name)\n");
    assert_eq!(sent.body["n_predict"], 8);
    // Chat still goes to /v1 when the base URL is the server's root.
    client.chat(&question()).await.unwrap();
    assert_eq!(mock.requests().pop().unwrap().path, "/v1/chat/completions");
}

/// LM Studio and Ollama entries come with no model: the client picks one
/// from the service's list (a code model if there is one) and remembers it.
#[tokio::test]
async fn a_local_service_without_a_model_uses_one_it_lists() {
    let mock = MockServer::start().await;
    for kind in [ServiceKind::Lmstudio, ServiceKind::Ollama] {
        let service = ServiceConfig {
            chat_model: None,
            completion_model: None,
            ..service(kind, mock.url())
        };
        let client = Client::new(service, None, options()).unwrap();
        mock.set_reply("Fine.");
        assert_eq!(client.chat(&question()).await.unwrap().content, "Fine.");
        let sent = mock
            .requests()
            .into_iter()
            .rfind(|r| r.path.ends_with("/chat/completions"))
            .unwrap();
        assert_eq!(sent.body["model"], "mock-coder");
        let models_asked = mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/models"))
            .count();
        client.chat(&question()).await.unwrap();
        assert_eq!(
            mock.requests()
                .iter()
                .filter(|r| r.path.ends_with("/models"))
                .count(),
            models_asked,
            "the pick is remembered"
        );
    }
    // A cloud service is never guessed for.
    let service = ServiceConfig {
        chat_model: None,
        completion_model: None,
        ..service(ServiceKind::Openai, mock.url())
    };
    let client = Client::new(service, Some(ApiKey::new("k")), options()).unwrap();
    let error = client.chat(&question()).await.unwrap_err();
    assert!(error.to_string().contains("no model"), "{error}");
}

/// A service that answers with more than any real answer holds (a broken or
/// malicious endpoint) gets a clear error as soon as the limit is passed,
/// and the rest is never read: memory stays bounded whatever it sends.
#[tokio::test]
async fn a_huge_answer_is_refused_at_the_limit_and_the_rest_never_read() {
    let mock = MockServer::start().await;
    let client = client(&mock);
    let total = 4 * MAX_ANSWER_BYTES as u64;
    mock.set_behavior(Behavior::HugeBody {
        bytes: total,
        declared: false,
    });
    let error = client.list_models().await.unwrap_err();
    assert!(matches!(error, AiError::TooLarge { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "mock: the AI service's answer is over 32 MiB, more than AiCockpit accepts, so it stopped reading"
    );
    wait_until(|| mock.requests().last().is_some_and(|r| r.dropped)).await;
    let written = mock.requests().last().unwrap().written;
    assert!(
        written < 2 * MAX_ANSWER_BYTES as u64,
        "stopped near the limit, not at the end: {written} of {total} bytes written"
    );

    // Embeddings, the largest answers there are, say which setting to lower.
    let error = client
        .embed(Some("embedder"), &["a".into()])
        .await
        .unwrap_err();
    assert!(
        error.to_string().ends_with(
            "so it stopped reading; lower `search.embedding_batch` so that a batch's vectors fit"
        ),
        "{error}"
    );
    let error = client.chat(&question()).await.unwrap_err();
    assert!(matches!(error, AiError::TooLarge { .. }), "{error:?}");

    // An answer that declares its size is refused before any of it is read.
    mock.set_behavior(Behavior::HugeBody {
        bytes: total,
        declared: true,
    });
    let error = client.list_models().await.unwrap_err();
    assert!(matches!(error, AiError::TooLarge { .. }), "{error:?}");
    wait_until(|| mock.requests().last().is_some_and(|r| r.dropped)).await;
    let written = mock.requests().last().unwrap().written;
    assert!(
        written < MAX_ANSWER_BYTES as u64 / 2,
        "refused on its Content-Length: {written} bytes written"
    );

    // Just under the limit is still an answer.
    mock.set_behavior(Behavior::HugeBody {
        bytes: MAX_ANSWER_BYTES as u64 - 1024,
        declared: false,
    });
    assert_eq!(client.list_models().await.unwrap(), ["mock-chat"]);
}

/// A streamed reply that never ends ends at the reply limit with a clear
/// error, after the text that came before it.
#[tokio::test]
async fn a_runaway_streamed_reply_ends_at_the_limit() {
    let mock = MockServer::start().await;
    // Far past the limit, so that stopping near it shows however much the
    // loopback socket's buffers (several MiB each way under load) hold.
    let total = 32 * MAX_REPLY_BYTES as u64;
    mock.set_behavior(Behavior::HugeReply(total));
    let mut shown = 0;
    let Err(error) = client(&mock)
        .chat_stream(&question(), |piece| shown += piece.len())
        .await
    else {
        panic!("a reply of {total} bytes was accepted whole");
    };
    assert!(matches!(error, AiError::TooLarge { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "mock: the AI service's streamed reply is over 4 MiB, more than AiCockpit accepts, so it stopped reading; the reply ends there, unfinished"
    );
    assert!(
        shown <= MAX_REPLY_BYTES && shown > MAX_REPLY_BYTES - 32 * 1024,
        "the text up to the limit was passed on: {shown} bytes"
    );
    wait_until(|| mock.requests()[0].dropped).await;
    let written = mock.requests()[0].written;
    assert!(
        written < total * 3 / 8,
        "stopped near the limit, not at the end: {written} of {total} bytes written"
    );

    // A long reply under the limit streams whole.
    mock.set_behavior(Behavior::HugeReply(MAX_REPLY_BYTES as u64 - 1024));
    let reply = client(&mock)
        .chat_stream(&question(), |_| {})
        .await
        .unwrap();
    assert_eq!(reply.content.len(), MAX_REPLY_BYTES - 1024);
}

/// A service's error message is passed on cut to a bounded length, and of
/// an error body only the start is read.
#[tokio::test]
async fn huge_error_messages_are_cut_and_huge_error_bodies_not_read() {
    let mock = MockServer::start().await;
    let client = client(&mock);
    // A message that fits the error body's limit is cut to MAX_ERROR_MESSAGE_CHARS.
    mock.set_behavior(Behavior::HugeError(MAX_ERROR_BODY_BYTES as u64 - 1024));
    let error = client.chat(&question()).await.unwrap_err();
    let AiError::Status {
        status: 400,
        message,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        message.chars().count(),
        MAX_ERROR_MESSAGE_CHARS + 1,
        "cut, with an ellipsis"
    );
    assert!(
        message.starts_with("xxxx") && message.ends_with("x…"),
        "{message}"
    );

    // A body of megabytes: only its start is read, and shown as a snippet.
    let total = 64 * 1024 * 1024;
    mock.set_behavior(Behavior::HugeError(total));
    let error = client.chat(&question()).await.unwrap_err();
    assert!(
        matches!(error, AiError::Status { status: 400, .. }),
        "{error:?}"
    );
    let shown = error.to_string();
    assert!(shown.len() < 1024, "{} bytes", shown.len());
    assert!(
        shown.starts_with("mock: HTTP 400: {\"error\": {\"message\": \"xxx")
            && shown.ends_with("x…"),
        "a snippet of the body's start: {shown}"
    );
    wait_until(|| mock.requests().last().is_some_and(|r| r.dropped)).await;
    let written = mock.requests().last().unwrap().written;
    assert!(
        written < total / 4,
        "only the start was read: {written} of {total} bytes written"
    );

    // In a stream, an error event's message is cut as well.
    mock.set_behavior(Behavior::HugeError(1024 * 1024));
    let error = client.chat_stream(&question(), |_| {}).await.unwrap_err();
    assert!(matches!(error, AiError::Stream { .. }), "{error:?}");
    assert!(
        error.to_string().chars().count() < MAX_ERROR_MESSAGE_CHARS + 100,
        "{} characters",
        error.to_string().chars().count()
    );
}
