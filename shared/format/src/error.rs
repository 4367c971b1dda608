use glance_domain::DiskFormat;

/// Why an upload was refused. Every message is written for a 415 response body.
///
/// The API layer maps all of these to `415 Unsupported Media Type` (Glance raises
/// `InvalidImageData` for each); [`FormatError::code`] gives a stable machine code for logs
/// and for clients that want to tell the cases apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The content is (or is not) a recognisable format, and that disagrees with the
    /// `disk_format` the image was created with.
    #[error("Image format detected as {detected} but disk_format is {declared}")]
    Mismatch {
        declared: DiskFormat,
        detected: DiskFormat,
    },

    /// The content is the declared format but uses a feature that would make a consumer
    /// (qemu, Nova) read files other than the image itself, or that we cannot vouch for.
    #[error("{} image {reason}", label(*format))]
    Unsafe { format: DiskFormat, reason: String },

    /// The content carries the declared format's signature but its header is malformed or
    /// was cut short.
    #[error("{} image is invalid: {reason}", label(*format))]
    Invalid { format: DiskFormat, reason: String },

    /// Several formats' headers are present at once (say, an ISO that is also a qcow2):
    /// whichever one a consumer picks, the other was never checked.
    #[error(
        "Image data matches more than one format ({}), which is not allowed",
        formats.join(", ")
    )]
    MultipleFormats { formats: Vec<&'static str> },

    /// A format qemu knows but Glance has no `disk_format` for and never accepts (QED).
    #[error("Image format detected as {format}, which is not supported")]
    Unsupported { format: &'static str },
}

impl FormatError {
    /// A stable identifier for the kind of refusal, independent of the message wording.
    pub fn code(&self) -> &'static str {
        match self {
            FormatError::Mismatch { .. } => "format_mismatch",
            FormatError::Unsafe { .. } => "format_unsafe",
            FormatError::Invalid { .. } => "format_invalid",
            FormatError::MultipleFormats { .. } => "format_multiple",
            FormatError::Unsupported { .. } => "format_unsupported",
        }
    }
}

fn label(format: DiskFormat) -> String {
    format.as_str().to_ascii_uppercase()
}

/// What a format probe found wrong with a header it recognised. The inspector turns it into a
/// [`FormatError`] only if that format is the one the decision rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Unsafe(String),
    Invalid(String),
}

impl Problem {
    pub(crate) fn unsafe_(reason: impl Into<String>) -> Self {
        Problem::Unsafe(reason.into())
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Problem::Invalid(reason.into())
    }

    pub(crate) fn into_error(self, format: DiskFormat) -> FormatError {
        match self {
            Problem::Unsafe(reason) => FormatError::Unsafe { format, reason },
            Problem::Invalid(reason) => FormatError::Invalid { format, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_glance_refusals() {
        let mismatch = FormatError::Mismatch {
            declared: DiskFormat::Raw,
            detected: DiskFormat::Qcow2,
        };
        assert_eq!(
            mismatch.to_string(),
            "Image format detected as qcow2 but disk_format is raw"
        );

        let unsafe_ = Problem::unsafe_("has a backing file, which is not allowed")
            .into_error(DiskFormat::Qcow2);
        assert_eq!(
            unsafe_.to_string(),
            "QCOW2 image has a backing file, which is not allowed"
        );

        let multiple = FormatError::MultipleFormats {
            formats: vec!["iso", "qcow2"],
        };
        assert_eq!(
            multiple.to_string(),
            "Image data matches more than one format (iso, qcow2), which is not allowed"
        );
        assert_eq!(multiple.code(), "format_multiple");
    }
}
