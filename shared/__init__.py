"""Salesline's shared library: config, database, unit of work, outbox, inbox, events, bus,
timers, auth, HTTP conventions. It holds no business rule of any one service."""
