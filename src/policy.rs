//! Policy: which targets an event may deploy, and why not.
//!
//! A target takes an event when the event came through one of the target's hooks, names
//! the target's image, and carries a tag that the target's `tags` glob accepts. An event
//! whose image a target names but whose tag it refuses is *refused* (HTTP 422 for most
//! sources); one that no target names is *ignored* (HTTP 200).

use crate::config::{Config, TargetConfig};
use crate::event::ImagePushed;

/// The decision for one event.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Deploy to these targets.
    Deploy(Vec<&'a TargetConfig>),
    /// A target names the image, but its tag rule refuses this tag.
    Refused(String),
    /// No target through this hook runs this image.
    Ignored(String),
}

/// Decides what `event`, received through `hook`, may deploy.
pub fn decide<'a>(config: &'a Config, hook: &str, event: &ImagePushed) -> Decision<'a> {
    let mut deploy = Vec::new();
    let mut refused = Vec::new();
    for target in config
        .targets
        .iter()
        .filter(|t| t.accepts_hook(hook) && t.image == event.image)
    {
        if target.tags.matches(&event.tag) {
            deploy.push(target);
        } else {
            refused.push(format!(
                "target '{}' takes tags '{}'",
                target.name,
                target.tags.as_str()
            ));
        }
    }
    if !deploy.is_empty() {
        Decision::Deploy(deploy)
    } else if !refused.is_empty() {
        Decision::Refused(format!(
            "tag '{}' of {} is refused: {}",
            event.tag,
            event.image,
            refused.join("; ")
        ))
    } else {
        Decision::Ignored(format!("no target of hook '{hook}' runs {}", event.image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ImageName;
    use std::path::Path;

    fn config() -> Config {
        Config::from_toml(
            r#"
[[hooks]]
name = "a"
source = "generic"
token = "x"
[[hooks]]
name = "b"
source = "generic"
token = "y"
[[targets]]
name = "web"
kind = "service"
service = "web"
image = "127.0.0.1:5000/app"
tags = "v*"
hooks = ["a"]
[[targets]]
name = "web-edge"
kind = "container"
container = "edge"
image = "127.0.0.1:5000/app"
[[targets]]
name = "nginx"
kind = "container"
container = "nginx"
image = "nginx"
tags = "1.*"
"#,
            "t",
            Path::new("."),
        )
        .unwrap()
    }

    fn push(image: &str, tag: &str) -> ImagePushed {
        ImagePushed {
            image: ImageName::parse(image).unwrap(),
            tag: tag.into(),
            digest: None,
            delivery: None,
            callback_url: None,
        }
    }

    fn names(d: &Decision<'_>) -> Vec<String> {
        match d {
            Decision::Deploy(ts) => ts.iter().map(|t| t.name.clone()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn matching_by_hook_image_and_tag() {
        let c = config();
        assert_eq!(
            names(&decide(&c, "a", &push("127.0.0.1:5000/app", "v2"))),
            ["web", "web-edge"]
        );
        assert_eq!(
            names(&decide(&c, "b", &push("127.0.0.1:5000/app", "v2"))),
            ["web-edge"]
        );
        assert_eq!(
            names(&decide(&c, "a", &push("127.0.0.1:5000/app", "latest"))),
            ["web-edge"]
        );
        assert_eq!(
            names(&decide(&c, "a", &push("docker.io/library/nginx", "1.25"))),
            ["nginx"]
        );
    }

    #[test]
    fn refused_and_ignored() {
        let c = config();
        let d = decide(&c, "a", &push("index.docker.io/library/nginx", "latest"));
        assert!(
            matches!(&d, Decision::Refused(r) if r.contains("nginx") && r.contains("1.*")),
            "{d:?}"
        );
        let d = decide(&c, "a", &push("127.0.0.1:5000/other", "v1"));
        assert!(matches!(d, Decision::Ignored(_)));
        // A different registry with the same path is a different image.
        let d = decide(&c, "a", &push("127.0.0.1:5001/app", "v1"));
        assert!(matches!(d, Decision::Ignored(_)));
    }
}
