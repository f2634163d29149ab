#pragma once
// Umbrella header: everything linearize offers. Include single headers to compile less.
#include <linearize/support/atomic_file.hpp>
#include <linearize/support/error.hpp>
#include <linearize/support/runtime.hpp>

#include <linearize/core/granularity.hpp>
#include <linearize/core/kernels.hpp>
#include <linearize/core/mask_set.hpp>
#include <linearize/core/relu_slot.hpp>
#include <linearize/core/network.hpp>
#include <linearize/support/seed.hpp>

#include <linearize/data/augment.hpp>
#include <linearize/data/cifar.hpp>
#include <linearize/data/dataset.hpp>
#include <linearize/data/dataset_files.hpp>
#include <linearize/data/fashion_mnist.hpp>
#include <linearize/data/jpeg.hpp>
#include <linearize/data/loader.hpp>
#include <linearize/data/registry.hpp>
#include <linearize/data/tiny_imagenet.hpp>
