"""The image catalog: imagelist's REST API (images, tokens, health) on imgctl's database."""
