-- What the `notifications` projection remembers of each bounty so that later notifications
-- name it: events after `BountyPosted` carry no title, and a wallet's `PaymentReceived` or
-- `HoldRefunded` names only the payment, which is the bounty's escrow payment.
CREATE TABLE notification_bounties (
    bounty_id  uuid PRIMARY KEY,
    payment_id uuid NOT NULL,
    poster     uuid NOT NULL,
    title      text NOT NULL
);

CREATE INDEX notification_bounties_payment_idx ON notification_bounties (payment_id);

-- Unread first by position for one user: the feed's `unread=true` page.
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, position DESC)
    WHERE read_at IS NULL;
