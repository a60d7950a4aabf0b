"""OS sandboxing building blocks shared by the plugin host (and the model runner)."""
