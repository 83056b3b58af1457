"""Code every service needs once: settings, bus connection, object store, logging, health, errors."""
