# Offline: the mock provider answers every AWS call. The trust and storage policies are built
# from inputs only, so plan already holds them: each run decodes the rendered JSON.

mock_provider "aws" {}

variables {
  name               = "trainyard-test"
  cluster_name       = "trainyard-test"
  oidc_provider_arn  = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  oidc_issuer_url    = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  bucket_arn         = "arn:aws:s3:::trainyard-test-storage"
  bucket_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
}

run "one_role_per_service_account_each_trusting_exactly_it" {
  command = plan

  assert {
    condition     = toset(keys(aws_iam_role.this)) == toset(["api", "worker", "trainer"])
    error_message = "there must be exactly one role per service account: api, worker, trainer"
  }
  assert {
    condition = alltrue([
      for role, sa in {
        api     = "system:serviceaccount:trainyard:trainyard-backend"
        worker  = "system:serviceaccount:trainyard:trainyard-worker"
        trainer = "system:serviceaccount:trainyard-training:trainyard-trainer"
      } :
      jsondecode(aws_iam_role.this[role].assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"] == [sa]
    ])
    error_message = "each role must trust only its own service account (the chart's names for release trainyard)"
  }
  assert {
    condition = alltrue([
      for role in ["api", "worker", "trainer"] :
      jsondecode(aws_iam_role.this[role].assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud"] == "sts.amazonaws.com"
    ])
    error_message = "each trust policy must require the audience sts.amazonaws.com"
  }
  assert {
    condition = alltrue([
      for role in ["api", "worker", "trainer"] : alltrue([
        for s in jsondecode(aws_iam_role.this[role].assume_role_policy).Statement :
        s.Effect == "Allow" && s.Action == "sts:AssumeRoleWithWebIdentity"
        && s.Principal == { Federated = var.oidc_provider_arn }
        && keys(s.Condition) == ["StringEquals"]
      ])
    ])
    error_message = "trust must go to the cluster's OIDC provider only, by exact match (no StringLike wildcards)"
  }
}

run "trainer_is_trusted_in_every_training_namespace_and_no_other" {
  command = plan

  variables {
    training_namespaces = ["trainyard-training", "team-vision"]
  }

  assert {
    condition = toset(jsondecode(aws_iam_role.this["trainer"].assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"]) == toset([
      "system:serviceaccount:trainyard-training:trainyard-trainer",
      "system:serviceaccount:team-vision:trainyard-trainer",
    ])
    error_message = "the trainer role must trust its service account in each training namespace, exactly"
  }
  assert {
    condition     = jsondecode(aws_iam_role.this["api"].assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"] == ["system:serviceaccount:trainyard:trainyard-backend"]
    error_message = "training namespaces must not widen the API's trust"
  }
}

run "trainer_reads_datasets_and_writes_only_its_jobs_prefix" {
  command = plan

  # Never delete or overwrite a dataset.
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.storage["trainer"].policy).Statement :
      length(setintersection(toset(flatten([s.Action])), toset(["s3:PutObject", "s3:DeleteObject", "s3:*"]))) > 0
      && anytrue([for r in flatten([s.Resource]) : !startswith(r, "arn:aws:s3:::trainyard-test-storage/jobs/")])
    ])
    error_message = "the trainer may write and delete only below jobs/ (never datasets/)"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.storage["trainer"].policy).Statement :
      s.Effect == "Allow" && contains(flatten([s.Action]), "s3:PutObject") && contains(flatten([s.Action]), "s3:DeleteObject")
      && flatten([s.Resource]) == ["arn:aws:s3:::trainyard-test-storage/jobs/*"]
    ])
    error_message = "the trainer must be able to publish (put, then delete the temporary key) below jobs/"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.storage["trainer"].policy).Statement :
      s.Action == "s3:GetObject" && toset(flatten([s.Resource])) == toset(["arn:aws:s3:::trainyard-test-storage/datasets/*", "arn:aws:s3:::trainyard-test-storage/jobs/*"])
    ])
    error_message = "the trainer must read datasets/ (its dataset) and jobs/ (the checkpoint it resumes from)"
  }
}

run "no_role_reaches_outside_its_prefixes" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for role in ["api", "worker", "trainer"] : [
        for s in jsondecode(aws_iam_role_policy.storage[role].policy).Statement : [
          for r in flatten([s.Resource]) :
          r == "arn:aws:s3:::trainyard-test-storage" || r == var.bucket_kms_key_arn
          || contains(["arn:aws:s3:::trainyard-test-storage/datasets/*", "arn:aws:s3:::trainyard-test-storage/jobs/*"], r)
        ]
      ]
    ]))
    error_message = "every resource must be the bucket (listing), its key, or an object under datasets/ or jobs/"
  }
  assert {
    condition = alltrue(flatten([
      for role in ["api", "worker", "trainer"] : [
        for s in jsondecode(aws_iam_role_policy.storage[role].policy).Statement :
        s.Resource != "arn:aws:s3:::trainyard-test-storage" || toset(try(s.Condition.StringLike["s3:prefix"], [])) == toset(["datasets/*", "jobs/*"])
      ]
    ]))
    error_message = "listing the bucket must be limited to the role's prefixes"
  }
  assert {
    condition = alltrue(flatten([
      for role in ["api", "worker", "trainer"] : [
        for s in jsondecode(aws_iam_role_policy.storage[role].policy).Statement :
        s.Effect == "Allow" && !contains(flatten([s.Action]), "s3:*") && !contains(flatten([s.Action]), "kms:*")
      ]
    ]))
    error_message = "no wildcard actions"
  }
  assert {
    condition = alltrue([
      for role in ["api", "worker", "trainer"] : anytrue([
        for s in jsondecode(aws_iam_role_policy.storage[role].policy).Statement :
        s.Resource == var.bucket_kms_key_arn && try(s.Condition.StringEquals["kms:ViaService"], "") == "s3.eu-west-1.amazonaws.com"
      ])
    ])
    error_message = "the bucket key may be used only through S3 in its region"
  }
}

run "worker_only_reads_and_api_writes_only_datasets" {
  command = plan

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.storage["worker"].policy).Statement :
      length(setintersection(toset(flatten([s.Action])), toset(["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey"]))) == 0
    ])
    error_message = "the worker must not write to storage"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.storage["api"].policy).Statement :
      !contains(flatten([s.Action]), "s3:PutObject") || flatten([s.Resource]) == ["arn:aws:s3:::trainyard-test-storage/datasets/*"]
    ])
    error_message = "the API may write only below datasets/ (uploads), never an attempt's outputs"
  }
  assert {
    condition     = output.storage_access.api.write == ["datasets/"] && output.storage_access.worker.write == [] && output.storage_access.trainer.write == ["jobs/"]
    error_message = "storage_access must report the granted write prefixes"
  }
}

run "storage_prefix_and_registered_datasets_move_the_grants" {
  command = plan

  variables {
    storage_prefix              = "platform"
    registered_dataset_prefixes = ["shared-datasets/"]
  }

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.storage["trainer"].policy).Statement :
      s.Action == "s3:GetObject" && toset(flatten([s.Resource])) == toset([
        "arn:aws:s3:::trainyard-test-storage/platform/datasets/*",
        "arn:aws:s3:::trainyard-test-storage/platform/shared-datasets/*",
        "arn:aws:s3:::trainyard-test-storage/platform/jobs/*",
      ])
    ])
    error_message = "reads must follow storage_prefix and include the registered dataset prefixes"
  }
  assert {
    condition = alltrue([
      for role in ["api", "worker", "trainer"] : alltrue([
        for s in jsondecode(aws_iam_role_policy.storage[role].policy).Statement : alltrue([
          for r in flatten([s.Resource]) : !strcontains(r, "shared-datasets") || s.Action == "s3:GetObject"
        ])
      ])
    ])
    error_message = "registered dataset prefixes must be read-only for every role"
  }
}

run "annotations_carry_each_roles_arn" {
  command = apply

  assert {
    condition = alltrue([
      for role in ["api", "worker", "trainer"] :
      output.service_account_annotations[role] == { "eks.amazonaws.com/role-arn" = aws_iam_role.this[role].arn }
      && output.role_arns[role] == aws_iam_role.this[role].arn
    ])
    error_message = "each service account annotation must name its own role's ARN"
  }
  assert {
    condition     = aws_iam_role_policy.storage["trainer"].role == aws_iam_role.this["trainer"].id
    error_message = "the trainer's storage policy must be attached to the trainer role"
  }
}

run "issuer_url_with_trailing_slash_is_refused" {
  command = plan

  variables {
    oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE/"
  }

  expect_failures = [var.oidc_issuer_url]
}

run "no_training_namespace_is_refused" {
  command = plan

  variables {
    training_namespaces = []
  }

  expect_failures = [var.training_namespaces]
}

run "registered_datasets_below_jobs_are_refused" {
  command = plan

  variables {
    registered_dataset_prefixes = ["jobs/imports/"]
  }

  expect_failures = [var.registered_dataset_prefixes]
}
