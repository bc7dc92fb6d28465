provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { "trainyard.dev/deployment" = var.name })
  }
}
