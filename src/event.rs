//! The one event every source produces: an image was pushed.

use crate::reference::ImageName;
use serde::Serialize;

/// "A new image was pushed", normalised from whatever the registry sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImagePushed {
    /// The repository, normalised (`127.0.0.1:5000/app`, `docker.io/library/nginx`).
    #[serde(serialize_with = "as_string")]
    pub image: ImageName,
    /// The tag that was pushed (validated against Docker's tag grammar).
    pub tag: String,
    /// The manifest digest, when the source says which one was pushed.
    pub digest: Option<String>,
    /// The sender's id for this delivery or event, when it gives one (for de-duplication).
    pub delivery: Option<String>,
    /// Where to report the outcome, when the sender asks for it (Docker Hub's
    /// `callback_url`, or the generic source's).
    pub callback_url: Option<String>,
}

fn as_string<S: serde::Serializer>(v: &ImageName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
