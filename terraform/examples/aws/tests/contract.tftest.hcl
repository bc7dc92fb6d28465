# The values test_terraform_chart_contract.py reads (terraform test -verbose prints this run's
# state, outputs included) and checks against the chart: one apply, with the example's defaults.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  region                 = "eu-west-1"
  admin_principal_arns   = ["arn:aws:iam::123456789012:role/platform-admin"]
  domain                 = "trainyard.example.org"
  ingress_cluster_issuer = "letsencrypt"
  oidc_issuer            = "https://idp.example.org/realms/ml"
  oidc_audience          = "trainyard-api"
}

# Each role an ARN of its own, so a role on the wrong ServiceAccount shows.
override_resource {
  target = module.identity.aws_iam_role.this["api"]
  values = { arn = "arn:aws:iam::123456789012:role/trainyard-api" }
}

override_resource {
  target = module.identity.aws_iam_role.this["worker"]
  values = { arn = "arn:aws:iam::123456789012:role/trainyard-worker" }
}

override_resource {
  target = module.identity.aws_iam_role.this["trainer"]
  values = { arn = "arn:aws:iam::123456789012:role/trainyard-trainer" }
}

run "production" {
  command = apply

  assert {
    condition     = can(yamldecode(output.helm_values))
    error_message = "helm_values must be YAML."
  }
}
