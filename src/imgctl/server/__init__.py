"""The imgctl server: the promotion gRPC service and what it tells the outside world."""
