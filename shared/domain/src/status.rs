use crate::wire_enum;

/// An image's status, with Glance's transition table (`glance/domain/__init__.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageStatus {
    Queued,
    Saving,
    Active,
    Killed,
    Deleted,
    PendingDelete,
    Deactivated,
    Uploading,
    Importing,
}

wire_enum!(ImageStatus, "image status", {
    Queued => "queued",
    Saving => "saving",
    Active => "active",
    Killed => "killed",
    Deleted => "deleted",
    PendingDelete => "pending_delete",
    Deactivated => "deactivated",
    Uploading => "uploading",
    Importing => "importing",
});

impl ImageStatus {
    /// Whether Glance's state machine allows moving from `self` to `to`.
    pub fn can_transition_to(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        if self == to {
            // Glance treats re-setting the same status as a no-op, except that a deleted image
            // stays deleted.
            return true;
        }
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Deleted | Queued)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Deleted | Queued)
                | (Active, PendingDelete | Deleted | Deactivated)
                | (Killed, Deleted)
                | (PendingDelete, Deleted | Active)
                | (Deactivated, Active | Deleted)
        )
    }

    /// Statuses whose rows count as deleted and are hidden from ordinary callers.
    pub fn is_deleted(self) -> bool {
        matches!(self, ImageStatus::Deleted | ImageStatus::PendingDelete)
    }
}

#[cfg(test)]
mod tests {
    use super::ImageStatus::*;

    #[test]
    fn an_upload_moves_queued_to_saving_to_active() {
        assert!(Queued.can_transition_to(Saving));
        assert!(Saving.can_transition_to(Active));
    }

    #[test]
    fn a_failed_upload_returns_saving_to_queued() {
        assert!(Saving.can_transition_to(Queued));
    }

    #[test]
    fn a_deactivated_image_cannot_go_to_pending_delete() {
        assert!(!Deactivated.can_transition_to(PendingDelete));
    }

    #[test]
    fn an_active_image_cannot_be_uploaded_again() {
        assert!(!Active.can_transition_to(Saving));
    }

    #[test]
    fn a_deleted_image_never_comes_back() {
        for s in super::ImageStatus::ALL {
            if *s != Deleted {
                assert!(!Deleted.can_transition_to(*s), "deleted -> {s}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for s in super::ImageStatus::ALL {
            assert_eq!(s.as_str().parse::<super::ImageStatus>().unwrap(), *s);
        }
        assert!("bogus".parse::<super::ImageStatus>().is_err());
    }
}
