//! The one seam to the Docker Engine API. Every deployer goes through [`Engine`], so every
//! call is made, counted and turned into an [`EngineError`] the same way.
//!
//! The client is bollard over the unix socket (or whatever `DOCKER_HOST` says). It
//! connects lazily and negotiates the API version on first use, so dockhand starts even
//! when the engine is down, and never asks a 20.10 engine (API 1.41) for a newer API.

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ImageInspect, NetworkConnectRequest, Service,
    ServiceSpec, Task,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListTasksOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder, UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// What went wrong talking to the engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached (socket missing, daemon down, connection reset).
    #[error("cannot reach the Docker Engine at {host}: {message} (is dockerd running, and is its socket mounted where DOCKER_HOST says?)")]
    Unreachable {
        /// Where we looked.
        host: String,
        /// What the transport said.
        message: String,
    },
    /// The engine has no such object.
    #[error("{0}")]
    NotFound(String),
    /// The engine refused the request (4xx), with its message.
    #[error("the engine refused: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The engine failed (5xx), with its message.
    #[error("the engine failed: {message}")]
    Failed {
        /// HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// Anything else bollard reports (bad JSON, stream errors).
    #[error("engine client error: {0}")]
    Client(String),
}

impl EngineError {
    /// Whether trying again later may help (engine down, 5xx, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EngineError::Unreachable { .. } | EngineError::Failed { .. }
        )
    }
}

/// A handle on the Docker Engine.
pub struct Engine {
    /// `DOCKER_HOST`, or the default socket.
    host: String,
    /// The negotiated client, once the engine has answered.
    client: Mutex<Option<Docker>>,
    /// How many API calls were made; tests use it to prove bad requests never reach here.
    calls: AtomicU64,
}

impl Engine {
    /// An engine at `DOCKER_HOST`, or the local socket. Does not connect yet.
    pub fn from_env() -> Engine {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        Engine {
            host,
            client: Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    /// Where the engine is expected.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many Engine API calls this handle has made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The negotiated client, connecting on first use.
    async fn docker(&self) -> Result<Docker, EngineError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut guard = self.client.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let unreachable = |e: BollardError| EngineError::Unreachable {
            host: self.host.clone(),
            message: e.to_string(),
        };
        let docker = Docker::connect_with_host(&self.host)
            .map_err(unreachable)?
            .with_timeout(Duration::from_secs(120));
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        *guard = Some(docker.clone());
        Ok(docker)
    }

    fn map(&self, e: BollardError) -> EngineError {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } if status_code >= 500 => EngineError::Failed {
                status: status_code,
                message,
            },
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Refused {
                status: status_code,
                message,
            },
            BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_) => EngineError::Unreachable {
                host: self.host.clone(),
                message: e.to_string(),
            },
            other => EngineError::Client(other.to_string()),
        }
    }

    /// The engine's version string, proving it answers.
    pub async fn version(&self) -> Result<String, EngineError> {
        let d = self.docker().await?;
        let v = d.version().await.map_err(|e| self.map(e))?;
        Ok(format!(
            "{} (API {})",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    // ---- Swarm services ------------------------------------------------------------

    /// Inspects a service by name or id.
    pub async fn inspect_service(&self, name: &str) -> Result<Service, EngineError> {
        let d = self.docker().await?;
        d.inspect_service(name, None).await.map_err(|e| self.map(e))
    }

    /// Updates a service to `spec`, at the version index it was read at. Returns the
    /// engine's warnings.
    pub async fn update_service(
        &self,
        id: &str,
        spec: ServiceSpec,
        version: u64,
    ) -> Result<Vec<String>, EngineError> {
        let d = self.docker().await?;
        let version = i32::try_from(version).map_err(|_| {
            EngineError::Client(format!("service version {version} does not fit the API"))
        })?;
        let options = UpdateServiceOptionsBuilder::default()
            .version(version)
            .registry_auth_from("spec")
            .build();
        let r = d
            .update_service(id, spec, options, None)
            .await
            .map_err(|e| self.map(e))?;
        Ok(r.warnings.unwrap_or_default())
    }

    /// The tasks of a service.
    pub async fn service_tasks(&self, service_id: &str) -> Result<Vec<Task>, EngineError> {
        let d = self.docker().await?;
        let filters = HashMap::from([("service".to_string(), vec![service_id.to_string()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        d.list_tasks(Some(options)).await.map_err(|e| self.map(e))
    }

    // ---- Images --------------------------------------------------------------------

    /// The digest the registry serves for `reference` (`name:tag`), asked through the engine
    /// so that its credentials and mirrors apply.
    pub async fn registry_digest(&self, reference: &str) -> Result<String, EngineError> {
        let d = self.docker().await?;
        let info = d
            .inspect_registry_image(reference, None)
            .await
            .map_err(|e| self.map(e))?;
        info.descriptor.digest.ok_or_else(|| {
            EngineError::Client(format!("the registry gave no digest for {reference}"))
        })
    }

    /// Pulls `reference`, calling `progress` with each distinct status line.
    pub async fn pull(
        &self,
        reference: &str,
        mut progress: impl FnMut(String),
    ) -> Result<(), EngineError> {
        let d = self.docker().await?;
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = d.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => EngineError::Refused {
                    status: 0,
                    message: error,
                },
                other => self.map(other),
            })?;
            let line = match (info.id, info.status) {
                (Some(id), Some(status)) => format!("{id}: {status}"),
                (None, Some(status)) => status,
                _ => continue,
            };
            // Skip the byte counters ("Downloading", "Extracting") that repeat per chunk.
            if line != last && !line.ends_with("Downloading") && !line.ends_with("Extracting") {
                progress(line.clone());
                last = line;
            }
        }
        Ok(())
    }

    /// Tags the local image `source` (an id or reference) as `repo:tag`.
    pub async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let d = self.docker().await?;
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        d.tag_image(source, Some(options))
            .await
            .map_err(|e| self.map(e))
    }

    /// Inspects a local image.
    pub async fn inspect_image(&self, reference: &str) -> Result<ImageInspect, EngineError> {
        let d = self.docker().await?;
        d.inspect_image(reference).await.map_err(|e| self.map(e))
    }

    // ---- Containers ----------------------------------------------------------------

    /// Inspects a container by name or id.
    pub async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<ContainerInspectResponse, EngineError> {
        let d = self.docker().await?;
        d.inspect_container(name, None)
            .await
            .map_err(|e| self.map(e))
    }

    /// Creates a container called `name`; returns its id.
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let d = self.docker().await?;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let r = d
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.map(e))?;
        Ok(r.id)
    }

    /// Connects a container to a network with the given endpoint settings.
    pub async fn connect_network(
        &self,
        network: &str,
        request: NetworkConnectRequest,
    ) -> Result<(), EngineError> {
        let d = self.docker().await?;
        d.connect_network(network, request)
            .await
            .map_err(|e| self.map(e))
    }

    /// Starts a container. Starting a running container is not an error.
    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        let d = self.docker().await?;
        match d.start_container(id, None).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// Stops a container, giving it `grace` before SIGKILL. Stopping a stopped container
    /// is not an error.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let d = self.docker().await?;
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        match d.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map(e)),
        }
    }

    /// Renames a container.
    pub async fn rename_container(&self, id: &str, new_name: &str) -> Result<(), EngineError> {
        let d = self.docker().await?;
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        d.rename_container(id, options)
            .await
            .map_err(|e| self.map(e))
    }

    /// Removes a container (forcibly, if running). Its volumes are kept.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let d = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        d.remove_container(id, Some(options))
            .await
            .map_err(|e| self.map(e))
    }
}
