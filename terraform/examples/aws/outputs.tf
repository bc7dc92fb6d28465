output "helm_values" {
  description = "The chart's values for this tier (YAML): terraform output -raw helm_values > aws-values.yaml; helm install ... -f aws-values.yaml -f <your values>. Holds no secret."
  value       = yamlencode(local.helm_values)
}

output "namespace" {
  description = "The namespace to install the Helm release into (helm install -n): the IRSA roles trust its ServiceAccounts only."
  value       = var.namespace
}

output "secrets_script" {
  description = "A bash script creating the Kubernetes Secrets the chart references (database URL, Redis URL, the platform's tokens), reading the passwords from Secrets Manager when run: terraform output -raw secrets_script | bash. Holds no secret itself."
  value = templatefile("${path.module}/secrets.sh.tftpl", {
    region               = var.region
    cluster_name         = module.cluster.cluster_name
    namespace            = var.namespace
    backend_deployment   = "${local.fullname}-backend"
    database_secret_arn  = module.data.database_password_secret_arn
    database_host        = module.data.database_endpoint
    database_port        = module.data.database_port
    database_name        = module.data.database_name
    database_secret_name = local.database_secret.name
    database_secret_key  = local.database_secret.key
    redis_secret_arn     = module.data.redis_auth_secret_arn
    redis_secret_name    = local.redis_secret.name
    redis_secret_key     = local.redis_secret.key
    tokens_secret_name   = one(distinct([for ref in local.token_secrets : ref.name]))
    token_keys           = join(" ", [for ref in local.token_secrets : ref.key])
  })
}

output "kubeconfig_command" {
  description = "Points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.cluster.cluster_name}"
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.cluster.cluster_name
}

output "device_plugin_values" {
  description = "Values (YAML) for NVIDIA's k8s-device-plugin chart, scheduling it on exactly the GPU nodes."
  value       = module.gpu_capacity.device_plugin_values
}

output "database_password_secret_arn" {
  description = "Secrets Manager secret RDS keeps the database's master credentials in (JSON: username, password); RDS rotates it."
  value       = module.data.database_password_secret_arn
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token and the full rediss:// URL (JSON: auth_token, url)."
  value       = module.data.redis_auth_secret_arn
}

output "role_arns" {
  description = "IRSA role of each of the platform's ServiceAccounts (api, worker, trainer)."
  value       = module.identity.role_arns
}

output "service_accounts" {
  description = "namespace/name of the ServiceAccounts each IRSA role trusts, as the chart names them with helm_values."
  value = {
    api     = "${var.namespace}/${local.service_accounts.api}"
    worker  = "${var.namespace}/${local.service_accounts.worker}"
    trainer = "${var.training_namespace}/${local.service_accounts.trainer}"
  }
}

output "cluster_autoscaler_values" {
  description = "Values (YAML) for the Kubernetes cluster-autoscaler chart (https://kubernetes.github.io/autoscaler), in kube-system: it finds this cluster's node groups by their tags and runs as its IRSA role."
  value = yamlencode({
    autoDiscovery = { clusterName = module.cluster.cluster_name }
    awsRegion     = var.region
    rbac = {
      serviceAccount = {
        create      = true
        name        = local.autoscaler_service_account.name
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.cluster_autoscaler.arn }
      }
    }
  })
}
