"""Orders: order entry (automatic from signed contracts), approval, fulfilment, delivery, payment."""
