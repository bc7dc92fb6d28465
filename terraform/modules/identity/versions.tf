terraform {
  # mock_provider and override_* in the tests need 1.7+; 1.9 brings cross-variable validations.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
