# The example wires the five modules: the Helm values carry their outputs, hold no secret, and
# name the ServiceAccounts the IRSA roles trust; the secrets step reads Secrets Manager.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  region                 = "eu-west-1"
  name                   = "trainyard"
  admin_principal_arns   = ["arn:aws:iam::123456789012:role/platform-admin"]
  domain                 = "trainyard.example.org"
  ingress_cluster_issuer = "letsencrypt"
  oidc_issuer            = "https://idp.example.org/realms/ml"
  oidc_audience          = "trainyard-api"
}

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

run "helm_values_carry_the_modules_outputs" {
  command = apply

  assert {
    condition     = yamldecode(output.helm_values).storage == { url = "s3://trainyard-data-123456789012", s3 = { endpointUrl = "", region = "eu-west-1" } }
    error_message = "storage must be the data module's bucket in the example's region."
  }

  assert {
    condition     = yamldecode(output.helm_values).secrets.s3.name == ""
    error_message = "Pods reach S3 through IRSA: no static-key Secret."
  }

  assert {
    condition     = yamldecode(output.helm_values).backend.serviceAccount.annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/trainyard-api"
    error_message = "The API's ServiceAccount must carry the API role."
  }

  assert {
    condition     = yamldecode(output.helm_values).worker.serviceAccount.annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/trainyard-worker"
    error_message = "The worker's ServiceAccount must carry the worker role."
  }

  assert {
    condition     = yamldecode(output.helm_values).training.serviceAccount.annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/trainyard-trainer"
    error_message = "The trainers' ServiceAccount must carry the trainer role."
  }

  assert {
    condition     = yamldecode(output.helm_values).training.tolerations == [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
    error_message = "Trainers must tolerate the GPU nodes' taint."
  }

  assert {
    condition     = tomap(yamldecode(output.helm_values).training.nodeSelector) == module.gpu_capacity.node_selector && length(module.gpu_capacity.node_selector) > 0
    error_message = "Trainers must be placed on the GPU node group's labels."
  }

  assert {
    condition     = yamldecode(output.helm_values).training.namespace == "trainyard-training" && output.service_accounts.trainer == "trainyard-training/trainyard-trainer"
    error_message = "The trainer role must trust the ServiceAccount of the namespace trainers run in."
  }

  assert {
    condition     = output.service_accounts.api == "trainyard/trainyard-backend" && output.service_accounts.worker == "trainyard/trainyard-worker" && yamldecode(output.helm_values).fullnameOverride == "trainyard"
    error_message = "The IRSA subjects must be the names the chart gives its ServiceAccounts."
  }

  assert {
    condition     = yamldecode(output.helm_values).secrets.redisUrl == { name = "trainyard-redis", key = "url" } && yamldecode(output.helm_values).secrets.databaseUrl == { name = "trainyard-database", key = "url" }
    error_message = "The API must read both URLs from the Secrets the secrets step creates."
  }

  # Neither the Redis token nor any URL with credentials reaches the values.
  assert {
    condition     = !strcontains(output.helm_values, "MockRedisAuthToken") && !can(regex("://[^/@\\s]+:[^/@\\s]+@", output.helm_values))
    error_message = "helm_values must hold no secret."
  }
}

run "the_secrets_step_reads_secrets_manager_and_holds_no_secret" {
  command = apply

  assert {
    condition     = strcontains(output.secrets_script, "--secret-id \"$1\"") && strcontains(output.secrets_script, "'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-mock-AbCdEf'") && strcontains(output.secrets_script, "'arn:aws:secretsmanager:eu-west-1:123456789012:secret:trainyard/redis-auth-AbCdEf'")
    error_message = "The script must read the database's and Redis's secrets from Secrets Manager."
  }

  assert {
    condition     = strcontains(output.secrets_script, "@trainyard.abcdefghijkl.eu-west-1.rds.amazonaws.com:5432/trainyard?ssl=require")
    error_message = "The database URL must point at the RDS endpoint over TLS."
  }

  assert {
    condition     = !strcontains(output.secrets_script, "MockRedisAuthToken")
    error_message = "The script must not carry the Redis token."
  }

  assert {
    condition     = alltrue([for name in ["trainyard-database", "trainyard-redis", "trainyard-tokens"] : strcontains(output.secrets_script, "'${name}'")])
    error_message = "The script must create every Secret helm_values references."
  }
}

run "an_explicit_bucket_name_is_used" {
  command = plan

  variables {
    bucket_name = "acme-ml-platform"
  }

  assert {
    condition     = yamldecode(output.helm_values).storage.url == "s3://acme-ml-platform"
    error_message = "bucket_name must name the bucket."
  }
}

run "the_ingress_needs_a_certificate" {
  command = plan

  variables {
    ingress_cluster_issuer  = ""
    ingress_tls_secret_name = ""
  }

  expect_failures = [var.ingress_cluster_issuer]
}

run "trainers_never_run_in_the_release_namespace" {
  command = plan

  variables {
    training_namespace = "trainyard"
  }

  expect_failures = [var.training_namespace]
}

run "the_cluster_autoscaler_may_resize_only_this_clusters_groups" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role.cluster_autoscaler.assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"] == "system:serviceaccount:kube-system:cluster-autoscaler"
    error_message = "Only the autoscaler's ServiceAccount may assume its role."
  }

  assert {
    condition     = jsondecode(aws_iam_role.cluster_autoscaler.assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud"] == "sts.amazonaws.com"
    error_message = "The autoscaler's role must require the STS audience."
  }

  assert {
    condition = alltrue([
      for statement in jsondecode(aws_iam_role_policy.cluster_autoscaler.policy).Statement :
      statement.Condition.StringEquals["aws:ResourceTag/k8s.io/cluster-autoscaler/${module.cluster.cluster_name}"] == "owned"
      if contains(flatten([statement.Action]), "autoscaling:SetDesiredCapacity")
    ])
    error_message = "Resizing must be limited to the Auto Scaling groups tagged as this cluster's."
  }

  assert {
    condition     = yamldecode(output.cluster_autoscaler_values).rbac.serviceAccount.annotations["eks.amazonaws.com/role-arn"] == aws_iam_role.cluster_autoscaler.arn && yamldecode(output.cluster_autoscaler_values).rbac.serviceAccount.name == "cluster-autoscaler"
    error_message = "The autoscaler chart's ServiceAccount must be the one the role trusts, carrying the role."
  }
}
