# IRSA roles of the platform's three S3 users: the API, the Temporal worker and trainer pods.
# Each role trusts exactly its service account (in its namespace, for the audience
# sts.amazonaws.com) and may touch only the prefixes its process uses; the table, and why,
# is in README.md. The policies are built with jsonencode from inputs only, so they are known
# at plan time and the tests assert on them.

locals {
  issuer = trimprefix(var.oidc_issuer_url, "https://")
  # The bucket's key is used only through S3, in the key's own region.
  kms_region = split(":", var.bucket_kms_key_arn)[3]

  # The layout below TRAINYARD_STORAGE_URL (s3://<bucket>[/<storage_prefix>]):
  #   datasets/<project>/<dataset>/...   uploaded datasets (platform/backend/trainyard/datasets/service.py)
  #   jobs/<job>/attempt-<n>/...          an attempt's checkpoints, weights and results
  #                                       (TRAINYARD_OUTPUT_URI, workflows/.../activities/trainer_env.py)
  root     = var.storage_prefix == "" ? "" : "${var.storage_prefix}/"
  datasets = "${local.root}datasets/"
  jobs     = "${local.root}jobs/"
  # Everywhere a dataset may be read from: uploads, and registered s3:// datasets.
  dataset_reads = distinct(concat([local.datasets], [for p in var.registered_dataset_prefixes : "${local.root}${p}"]))

  access = {
    # Uploads datasets (write), validates and deletes them; validates registered ones (read);
    # serves artifacts of attempts (GET /v1/jobs/{id}/artifacts/{name}: read jobs/).
    api = {
      read  = concat(local.dataset_reads, [local.jobs])
      write = [local.datasets]
    }
    # Validates a job's dataset before any trainer starts (read); copies an attempt's artifacts
    # into MLflow (read jobs/). It writes nothing to storage.
    worker = {
      read  = concat(local.dataset_reads, [local.jobs])
      write = []
    }
    # Mirrors its dataset (read), resumes from an earlier attempt's checkpoint (read jobs/) and
    # publishes checkpoints and artifacts atomically (put a temporary key, copy, delete it).
    trainer = {
      read  = concat(local.dataset_reads, [local.jobs])
      write = [local.jobs]
    }
  }

  subjects = {
    api     = ["system:serviceaccount:${var.namespace}:${var.service_accounts.api}"]
    worker  = ["system:serviceaccount:${var.namespace}:${var.service_accounts.worker}"]
    trainer = [for ns in var.training_namespaces : "system:serviceaccount:${ns}:${var.service_accounts.trainer}"]
  }

  purposes = {
    api     = "Trainyard API"
    worker  = "Trainyard worker"
    trainer = "Trainyard trainer pods"
  }

  trust_policies = {
    for role, subjects in local.subjects : role => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid       = "ServiceAccountOfThe${title(role)}"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${local.issuer}:sub" = subjects
            "${local.issuer}:aud" = "sts.amazonaws.com"
          }
        }
      }]
    })
  }

  storage_policies = {
    for role, access in local.access : role => jsonencode({
      Version = "2012-10-17"
      Statement = concat(
        [
          {
            # Listing is a bucket-level action: scoped by the prefix the request lists.
            Sid       = "ListItsPrefixes"
            Effect    = "Allow"
            Action    = "s3:ListBucket"
            Resource  = var.bucket_arn
            Condition = { StringLike = { "s3:prefix" = [for p in access.read : "${p}*"] } }
          },
          {
            Sid      = "ReadItsPrefixes"
            Effect   = "Allow"
            Action   = "s3:GetObject"
            Resource = [for p in access.read : "${var.bucket_arn}/${p}*"]
          },
        ],
        length(access.write) == 0 ? [] : [{
          # Put (single and multipart), the delete that ends an atomic publish or removes a
          # dataset, and the abort of an upload that failed half-way.
          Sid      = "WriteItsPrefixes"
          Effect   = "Allow"
          Action   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
          Resource = [for p in access.write : "${var.bucket_arn}/${p}*"]
        }],
        [{
          # SSE-KMS: reading needs Decrypt; writing a new object needs GenerateDataKey (and
          # Decrypt, to complete a multipart upload).
          Sid       = "UseTheBucketKeyThroughS3"
          Effect    = "Allow"
          Action    = length(access.write) == 0 ? ["kms:Decrypt"] : ["kms:Decrypt", "kms:GenerateDataKey"]
          Resource  = var.bucket_kms_key_arn
          Condition = { StringEquals = { "kms:ViaService" = "s3.${local.kms_region}.amazonaws.com" } }
        }],
      )
    })
  }

  tags = merge(var.tags, { "trainyard.dev/module" = "identity", "trainyard.dev/cluster" = var.cluster_name })
}

resource "aws_iam_role" "this" {
  for_each = local.subjects

  name                 = "${var.name}-${each.key}"
  description          = "IRSA role of the ${local.purposes[each.key]} on EKS cluster ${var.cluster_name}"
  assume_role_policy   = local.trust_policies[each.key]
  max_session_duration = var.max_session_duration
  tags                 = merge(local.tags, { "trainyard.dev/component" = each.key })
}

resource "aws_iam_role_policy" "storage" {
  for_each = local.storage_policies

  name   = "storage"
  role   = aws_iam_role.this[each.key].id
  policy = each.value
}
