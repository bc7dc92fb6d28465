# The Kubernetes cluster autoscaler (installed with its own chart, values in the
# cluster_autoscaler_values output) grows the GPU node group from zero when a trainer pod is
# pending, and shrinks it back. Its IRSA role may resize only this cluster's node groups.

data "aws_partition" "current" {}

locals {
  autoscaler_service_account = { namespace = "kube-system", name = "cluster-autoscaler" }
  oidc_issuer_host           = trimprefix(module.cluster.oidc_issuer_url, "https://")
}

resource "aws_iam_role" "cluster_autoscaler" {
  name = "${var.name}-cluster-autoscaler"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRoleWithWebIdentity"
      Principal = { Federated = module.cluster.oidc_provider_arn }
      Condition = {
        StringEquals = {
          "${local.oidc_issuer_host}:sub" = "system:serviceaccount:${local.autoscaler_service_account.namespace}:${local.autoscaler_service_account.name}"
          "${local.oidc_issuer_host}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name = "resize-${var.name}-node-groups"
  role = aws_iam_role.cluster_autoscaler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Discovery: these Describe calls take no resource-level permission.
        Sid    = "Discover"
        Effect = "Allow"
        Action = [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLaunchConfigurations",
          "autoscaling:DescribeScalingActivities",
          "autoscaling:DescribeTags",
          "ec2:DescribeImages",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplateVersions",
          "ec2:GetInstanceTypesFromInstanceRequirements",
        ]
        Resource = "*"
      },
      {
        Sid      = "DescribeThisClustersNodeGroups"
        Effect   = "Allow"
        Action   = "eks:DescribeNodegroup"
        Resource = "arn:${data.aws_partition.current.partition}:eks:${var.region}:${data.aws_caller_identity.current.account_id}:nodegroup/${module.cluster.cluster_name}/*/*"
      },
      {
        # Only the Auto Scaling groups tagged as this cluster's: EKS tags its managed node
        # groups' so.
        Sid      = "ResizeThisClustersGroups"
        Effect   = "Allow"
        Action   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
        Resource = "*"
        Condition = {
          StringEquals = { "aws:ResourceTag/k8s.io/cluster-autoscaler/${module.cluster.cluster_name}" = "owned" }
        }
      },
    ]
  })
}
