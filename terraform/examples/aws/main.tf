# The production tier on AWS: a VPC, an EKS cluster with a GPU node group, PostgreSQL, Redis and
# a bucket, and IRSA roles for the platform's pods. Its outputs feed `helm install` (helm_values)
# and the step that creates the chart's Secrets (secrets_script): README.md.

data "aws_caller_identity" "current" {}

locals {
  bucket_name = coalesce(var.bucket_name, "${var.name}-data-${data.aws_caller_identity.current.account_id}")

  # The chart's object names are pinned (fullnameOverride in helm_values), so the IRSA roles
  # trust exactly the ServiceAccounts the chart creates, whatever the release is called.
  fullname = "trainyard"
  service_accounts = {
    api     = "${local.fullname}-backend"
    worker  = "${local.fullname}-worker"
    trainer = "${local.fullname}-trainer"
  }

  # The Secrets the chart references (secrets.*): secrets_script creates them from Secrets
  # Manager; the chart and these values hold no secret.
  database_secret = { name = "${local.fullname}-database", key = "url" }
  redis_secret    = { name = "${local.fullname}-redis", key = "url" }
  # The platform's own random tokens, three keys of one Secret.
  token_secrets = {
    internalToken  = { name = "${local.fullname}-tokens", key = "internal-token" }
    callbackSecret = { name = "${local.fullname}-tokens", key = "callback-secret" }
    sessionSecret  = { name = "${local.fullname}-tokens", key = "session-secret" }
  }
}

module "network" {
  source = "../../modules/network"

  name               = var.name
  single_nat_gateway = var.single_nat_gateway
}

module "cluster" {
  source = "../../modules/cluster"

  name                   = var.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.endpoint_public_access
  public_access_cidrs    = var.public_access_cidrs
  admin_principal_arns   = var.admin_principal_arns
}

module "gpu_capacity" {
  source = "../../modules/gpu-capacity"

  name           = var.name
  cluster_name   = module.cluster.cluster_name
  subnet_ids     = module.network.private_subnet_ids
  node_role_arn  = module.cluster.node_role_arn
  instance_types = var.gpu_instance_types
  max_size       = var.gpu_max_size
  capacity_type  = var.gpu_capacity_type
}

module "data" {
  source = "../../modules/data"

  name       = var.name
  vpc_id     = module.network.vpc_id
  subnet_ids = module.network.private_subnet_ids
  # EKS puts its cluster security group on the managed nodes: the pods connect from there.
  client_security_group_ids = [module.cluster.cluster_security_group_id]
  deletion_protection       = var.deletion_protection
  multi_az                  = var.multi_az
  bucket_name               = local.bucket_name
}

module "identity" {
  source = "../../modules/identity"

  name                = var.name
  cluster_name        = module.cluster.cluster_name
  oidc_provider_arn   = module.cluster.oidc_provider_arn
  oidc_issuer_url     = module.cluster.oidc_issuer_url
  bucket_arn          = module.data.bucket_arn
  bucket_kms_key_arn  = module.data.bucket_kms_key_arn
  namespace           = var.namespace
  training_namespaces = [var.training_namespace]
  service_accounts    = local.service_accounts
}

locals {
  # The chart's values for this tier: only what Terraform knows. Image tags, Temporal and MLflow
  # addresses and the like come from the operator's own values file, given after this one.
  helm_values = {
    fullnameOverride = local.fullname
    ingress = {
      enabled   = true
      className = var.ingress_class_name
      host      = var.domain
      tls = {
        enabled       = true
        secretName    = var.ingress_tls_secret_name
        clusterIssuer = var.ingress_cluster_issuer
      }
    }
    oidc = {
      issuer   = var.oidc_issuer
      audience = var.oidc_audience
    }
    storage = {
      url = "s3://${module.data.bucket_name}"
      s3 = {
        endpointUrl = ""
        region      = var.region
      }
    }
    secrets = merge(local.token_secrets, {
      databaseUrl = local.database_secret
      redisUrl    = local.redis_secret
      # IRSA: the pods' roles reach S3; no static keys.
      s3 = { name = "" }
    })
    backend = { serviceAccount = { annotations = module.identity.service_account_annotations.api } }
    worker = {
      serviceAccount = { annotations = module.identity.service_account_annotations.worker }
      # The GPU groups scale to zero: admission counts what they may grow to, not what runs.
      capacity = { gpus = module.gpu_capacity.max_gpus, gpusPerNode = module.gpu_capacity.gpus_per_node }
    }
    training = {
      namespace    = var.training_namespace
      nodeSelector = module.gpu_capacity.node_selector
      tolerations  = module.gpu_capacity.tolerations
      serviceAccount = {
        create      = true
        name        = ""
        annotations = module.identity.service_account_annotations.trainer
      }
    }
  }
}
