"""Communication: the outbox and its delivery engine, the scheduler, reminders and paging."""
