terraform {
  # 1.9: cross-variable validations and `mock_provider`/`override_*` in terraform test.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
