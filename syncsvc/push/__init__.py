"""Push sync over WebSocket (Cognito's SNS push, on sockets): devices, subscriptions and the hub that wakes them."""
