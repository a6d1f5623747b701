"""airy-actors: the Facebook Messenger source of a conversational platform."""

__version__ = "0.1.0"
