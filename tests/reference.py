"""Published figures the models and the inspector must reproduce, each table with its source.

Parameter counts are trainable parameters (weights and biases, BatchNorm's affine ones included) for
3-channel input and 1000 classes unless a table says otherwise. "torchvision" means the model
documentation of torchvision.models (its "num_params" and "GFLOPS" fields); the papers are cited by
first author and year:

- LeCun, Bottou, Bengio & Haffner (1998), "Gradient-based learning applied to document recognition"
- Krizhevsky, Sutskever & Hinton (2012), "ImageNet classification with deep convolutional neural
  networks"
- Simonyan & Zisserman (2015), "Very deep convolutional networks for large-scale image recognition"
- Szegedy et al. (2014), "Going deeper with convolutions"
- He, Zhang, Ren & Sun (2016), "Deep residual learning for image recognition"
- Huang, Liu, van der Maaten & Weinberger (2017), "Densely connected convolutional networks"
- Zhang, Lipton, Li & Smola, "Dive into Deep Learning" (d2l), chapter 8 (modern CNNs)

Nothing here is computed from cnnzoo: these numbers are what the code is checked against.
"""

# ---- parameter counts ----------------------------------------------------------------------------

# ImageNet networks, 3 channels, 1000 classes.
#   model              params         source
IMAGENET_PARAMS = {
    # Krizhevsky 2012, two grouped towers (torchvision's single-tower one: 61,100,840)
    "alexnet_2012": 60_965_224,
    "vgg11": 132_863_336,  # torchvision
    "vgg11_bn": 132_868_840,  # torchvision
    "vgg13": 133_047_848,  # torchvision
    "vgg13_bn": 133_053_736,  # torchvision
    "vgg16": 138_357_544,  # torchvision
    "vgg16_bn": 138_365_992,  # torchvision
    "vgg19": 143_667_240,  # torchvision
    "vgg19_bn": 143_678_248,  # torchvision
    "resnet18": 11_689_512,  # torchvision
    "resnet34": 21_797_672,  # torchvision
    # torchvision (stride on the bottleneck's 3×3 conv; the count is the paper's too)
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,  # torchvision
    "resnet152": 60_192_808,  # torchvision
    "densenet121": 7_978_856,  # torchvision
    "densenet161": 28_681_000,  # torchvision
    "densenet169": 14_149_480,  # torchvision
    "densenet201": 20_013_928,  # torchvision
}

# CIFAR networks: 3×32×32 input, 10 classes.
CIFAR_PARAMS = {
    # He 2016, section 4.2 / Table 6 (0.27M): 16-32-64 maps, option A shortcuts
    "resnet20": 269_722,
    "resnet32": 464_154,  # He 2016 (0.46M)
    "resnet44": 658_586,  # He 2016 (0.66M)
    "resnet56": 853_018,  # He 2016 (0.85M)
    "resnet110": 1_727_962,  # He 2016 (1.7M)
    "densenet_bc_100_k12": 769_162,  # Huang 2017, Table 2 (0.8M): DenseNet-BC, L=100, k=12
}

# GoogLeNet as in the paper: 5×5 branches, biases, no BatchNorm (Szegedy 2014, Table 1, counted with
# biases).
GOOGLENET_PARAMS = {
    "without auxiliary heads": 6_998_552,
    # the two heads of section 5 (torchvision's BN version: 6,624,904)
    "with auxiliary heads": 13_378_280,
}

# d2l's simplified single-tower AlexNet (96-256-384-384-256, no LRN) on 224×224×1 images, 10
# classes.
D2L_ALEXNET_PARAMS = 46_764_746

# He 2016, section 4.2 / Fig. 5: a 256→64→64→256 bottleneck against two 3×3 convolutions on 256
# maps.
BOTTLENECK_256_WEIGHTS = 69_632
TWO_3X3_256_WEIGHTS = 1_179_648

# ---- architecture tables -------------------------------------------------------------------------

# AlexNet at 227×227 (Krizhevsky 2012, Fig. 2): side after conv1, pool1, conv2, pool2, conv3, conv4,
# conv5, pool5.
ALEXNET_2012_SIDES = [55, 27, 27, 13, 13, 13, 13, 6]
# Convolution groups (the two GPU towers): conv3 is the only layer that crosses them.
ALEXNET_2012_GROUPS = [1, 2, 1, 2, 2]
# Section 5: biases 1 in conv2, conv4, conv5, fc6 and fc7, 0 in the others; weights N(0, 0.01).
ALEXNET_2012_BIASES = [0, 1, 0, 1, 1, 1, 1, 0]
ALEXNET_2012_WEIGHT_STD = 0.01

# VGG configuration D (Simonyan 2015, Table 1): the 13 convolution widths of VGG-16.
VGG16_CONV_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]

# GoogLeNet at 224 px (Szegedy 2014, Table 1): output channels and side of each Inception module.
GOOGLENET_MODULES = {
    "inception3a": (256, 28), "inception3b": (480, 28),
    "inception4a": (512, 14), "inception4b": (512, 14), "inception4c": (512, 14),
    "inception4d": (528, 14), "inception4e": (832, 14),
    "inception5a": (832, 7), "inception5b": (1024, 7),
}
# Section 5: the auxiliary classifiers' losses are added to the total loss with weight 0.3.
GOOGLENET_AUX_WEIGHT = 0.3

# The 3a row of Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
GOOGLENET_3A = (64, 96, 128, 16, 32, 32)

# DenseNet depth L counts the weighted layers (convolutions and the FC layer): Huang 2017, Table 1
# and section 4.
DENSENET_DEPTH = {"densenet121": 121, "densenet161": 161, "densenet169": 169, "densenet201": 201,
                  "densenet_bc_100_k12": 100, "densenet_bc_40_k12": 40}

# ---- LeNet-5 layer by layer (LeCun 1998, section II.B), 32×32×1 input ----------------------------

# "Connections" counts every multiply-add plus one per output unit that has a bias.
#   layer      output shape    trainable params   connections   receptive field
LENET_1998_LAYERS = [
    ("c1.0", [6, 28, 28], 156, 122_304, 5),
    ("s2.0", [6, 14, 14], 12, 5_880, 6),
    ("c3.0", [16, 10, 10], 1_516, 151_600, 14),
    ("s4.0", [16, 5, 5], 32, 2_000, 16),
    ("c5.0", [120, 1, 1], 48_120, 48_120, 32),
    ("f6.1", [84], 10_164, 10_164, None),
    ("output", [10], 0, 840, None),  # 840 fixed parameters: the 10 × 84 ±1 prototypes
]
LENET_1998_TRAINABLE = 60_000
LENET_1998_FIXED = 840

# ---- receptive fields and multiply-adds ----------------------------------------------------------

# Receptive fields (side, in input pixels) at named layers. AlexNet and VGG-16 from the layer
# arithmetic of their papers' tables (r_out = r_in + (k − 1)·j_in); ResNets as commonly reported for
# torchvision's models.
RECEPTIVE_FIELDS = {
    "alexnet_2012": {"features.0": 11, "features.3": 19, "features.4": 51, "features.7": 67,
                     "features.8": 99,
                     "features.10": 131, "features.12": 163, "features.14": 195},  # conv1 … pool5
    "vgg16": {"features.28": 196, "features.30": 212},  # conv5_3 and pool5
    "resnet18": {"layer4.1.relu2": 435},
    "resnet50": {"layer4.2.relu3": 427},
}

# torchvision's published "GFLOPS": multiply-accumulates (in billions) of conv and linear layers at
# 224×224.
GMACS = {"resnet18": 1.814, "resnet50": 4.089, "vgg16": 15.47, "densenet121": 2.834}
