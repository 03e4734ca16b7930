"""Pretrained networks that losses, edits and metrics all use, and their weights: the
pytorch-fid Inception (:mod:`.inception`), torchvision VGG16 (:mod:`.vgg`), LPIPS
(:mod:`.lpips_net`), the converted-weights store (:mod:`.weights`), feature functions by
name (:mod:`.features`), and the critic (:mod:`.critic`: a trained discriminator as a feature
network, the committed critic file). A low layer: it imports only the plumbing, so ``losses``
and ``edit`` may use LPIPS or the critic without reaching up into the evaluation code of
``metrics``."""
