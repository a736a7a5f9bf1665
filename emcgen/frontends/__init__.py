"""Frontends: turn a trained model (file or in-memory object) into an emcgen IR graph."""
