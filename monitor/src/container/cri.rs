//! Container and pod metadata from the Kubernetes CRI API (containerd, CRI-O) over the runtime's
//! unix socket, with the published CRI protos (k8s-cri) on tonic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, MountPropagation,
    PodSandboxStatusRequest, VersionRequest,
};
use tonic::transport::Channel;

use super::metadata::{ContainerMeta, ContainerMount};

/// Where CRI runtimes usually listen.
pub const DEFAULT_CRI_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
];

/// Labels kubelet puts on the containers it starts, and that the pod fields read.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

pub struct CriClient {
    client: RuntimeServiceClient<Channel>,
    pub socket: PathBuf,
    timeout: Duration,
}

impl CriClient {
    /// Connects to the first socket that exists and answers a version request.
    pub async fn connect(sockets: &[PathBuf], timeout: Duration) -> Option<Self> {
        for socket in sockets.iter().filter(|p| p.exists()) {
            let path = socket.clone();
            // The URI is required by tonic and ignored by the connector.
            let endpoint = tonic::transport::Endpoint::try_from("http://[::]:50051").ok()?.timeout(timeout);
            let channel = endpoint
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await;
            let Ok(channel) = channel else { continue };
            let mut client = RuntimeServiceClient::new(channel);
            let version =
                tokio::time::timeout(timeout, client.version(VersionRequest { version: "v1".into() })).await;
            if let Ok(Ok(v)) = version {
                let v = v.into_inner();
                tracing::info!(
                    socket = %socket.display(),
                    runtime = %v.runtime_name,
                    version = %v.runtime_version,
                    "CRI runtime found"
                );
                return Some(Self { client, socket: socket.clone(), timeout });
            }
        }
        None
    }

    /// A container and its pod, or None when the runtime does not know it.
    pub async fn describe(&mut self, id: &str) -> Option<ContainerMeta> {
        let t = self.timeout;
        let status = tokio::time::timeout(
            t,
            self.client
                .container_status(ContainerStatusRequest { container_id: id.to_owned(), verbose: false }),
        )
        .await
        .ok()?
        .ok()?
        .into_inner()
        .status?;
        let listed = tokio::time::timeout(
            t,
            self.client.list_containers(ListContainersRequest {
                filter: Some(ContainerFilter { id: id.to_owned(), ..Default::default() }),
            }),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|r| r.into_inner().containers)
        .unwrap_or_default();
        let sandbox_id = listed.first().map(|c| c.pod_sandbox_id.clone()).unwrap_or_default();
        let mut labels = status.labels.clone();
        let mut pod_labels = HashMap::new();
        if !sandbox_id.is_empty()
            && let Ok(Ok(pod)) = tokio::time::timeout(
                t,
                self.client.pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: sandbox_id,
                    verbose: false,
                }),
            )
            .await
            && let Some(pod) = pod.into_inner().status
        {
            if let Some(m) = pod.metadata {
                labels.entry(POD_NAME_LABEL.to_owned()).or_insert(m.name);
                labels.entry(POD_NAMESPACE_LABEL.to_owned()).or_insert(m.namespace);
                labels.entry(POD_UID_LABEL.to_owned()).or_insert(m.uid);
            }
            pod_labels = pod.labels;
        }
        let image = status.image.map(|i| i.image).filter(|i| !i.is_empty());
        let name = status.metadata.map(|m| m.name);
        let mounts = status.mounts.iter().map(|m| ContainerMount {
            source: m.host_path.clone(),
            dest: m.container_path.clone(),
            mode: String::new(),
            rdwr: !m.readonly,
            // As Linux names them.
            propagation: match m.propagation() {
                MountPropagation::PropagationPrivate => "rprivate",
                MountPropagation::PropagationHostToContainer => "rslave",
                MountPropagation::PropagationBidirectional => "rshared",
            }
            .to_owned(),
        });
        Some(ContainerMeta {
            image_id: Some(status.image_ref).filter(|r| !r.is_empty()),
            mounts: mounts.collect(),
            labels,
            pod_labels,
            ..ContainerMeta::named(name, image, "cri")
        })
    }

    /// Every running container's id, for the listing at start.
    pub async fn list(&mut self) -> Vec<String> {
        match tokio::time::timeout(
            self.timeout,
            self.client.list_containers(ListContainersRequest { filter: None }),
        )
        .await
        {
            Ok(Ok(r)) => r.into_inner().containers.into_iter().map(|c| c.id).collect(),
            _ => Vec::new(),
        }
    }
}

pub fn default_sockets() -> Vec<PathBuf> {
    DEFAULT_CRI_SOCKETS.iter().map(|p| Path::new(p).to_owned()).collect()
}
