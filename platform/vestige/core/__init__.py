"""What every part of the platform stands on: configuration, the one error shape, logging, the workspace
(database engine and evidence store of one installation) and the plugin manager."""
