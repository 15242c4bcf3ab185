//! A Docker engine that is not there: a clear error, never a panic or a hang.
//! (Its own test binary, because it changes `DOCKER_HOST` for the process.)

use aicockpit_workspace::{DockerBackend, DockerOptions, WorkspaceError};

#[tokio::test]
async fn a_stopped_daemon_is_a_clear_error() {
    // Nothing listens on this socket: the error says how to install and start Docker.
    std::env::set_var("DOCKER_HOST", "unix:///nonexistent/aicockpit-test.sock");
    let error = match DockerBackend::connect(DockerOptions::default()).await {
        Err(error) => error,
        Ok(_) => panic!("connected to a socket that does not exist"),
    };
    std::env::remove_var("DOCKER_HOST");
    assert!(
        matches!(error, WorkspaceError::DockerUnavailable { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("/nonexistent/aicockpit-test.sock") && text.contains("docker.io"),
        "{text}"
    );
}
